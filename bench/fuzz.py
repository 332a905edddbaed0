"""``python -m bench.fuzz [--runs N] [--target NAME]``: every untrusted entry point under atheris (``make fuzz``).

Why atheris for the long run and hypothesis for the short one (``tests/fuzz``):
atheris is libFuzzer for Python, coverage-guided over the instrumented
``protocols`` modules, and runs tens of thousands of inputs a second without a
test runner's overhead — what a million inputs per entry point needs; it
mutates with libFuzzer's byte-level strategies and this project's structural
ones (``bench/fuzz_targets.py`` :func:`mutate`: huge numbers, deep nesting, bad
Unicode, wrong types), starting from the valid samples. Hypothesis is
deterministic, shrinks what it finds to a small example and lives in pytest:
right for the part of ``make test`` that must be short and repeatable.

Each target runs in its own process (libFuzzer runs once per process): a
million inputs when one call costs under 20 µs, else a hundred thousand.
Nothing found stops a run: each finding is counted by kind and its first
examples kept; a call that takes more than 5 s is a hang (libFuzzer's timeout,
exit 70). The table at the end is what ``docs/`` quotes; exit 1 on any finding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FAST_CALL_SECONDS = 20e-6
FULL, SLOW = 1_000_000, 100_000
TIMEOUT_EXIT = 70  # libFuzzer's exit code for an input that ran past -timeout


def _child(name: str, runs: int, results: Path) -> None:
    """In the child: fuzz one target with atheris, writing the counts to ``results`` as it goes."""
    import atheris

    with atheris.instrument_imports(include=["protocols"]):
        from bench import fuzz_targets

    target = next(t for t in fuzz_targets.TARGETS if t.name == name)
    counts: dict[str, Any] = {"inputs": 0, "findings": {}, "examples": {}}

    def write() -> None:
        results.write_text(json.dumps(counts))

    def one(data: bytes) -> None:
        counts["inputs"] += 1
        try:
            fuzz_targets.run(target, data)
        except fuzz_targets.Finding as found:
            counts["findings"][found.kind] = counts["findings"].get(found.kind, 0) + 1
            examples = counts["examples"].setdefault(found.kind, [])
            if len(examples) < 3:
                examples.append({"input": data[:200].hex(), "detail": found.detail})
            write()
        # libFuzzer ends the process from C after its last run (no Python exit handler runs): the counts are
        # written every 10,000 inputs and at the last one.
        if counts["inputs"] % 10_000 == 0 or counts["inputs"] >= runs:
            write()

    def structural(data: bytes, max_size: int, seed: int) -> bytes:
        if seed % 3 == 0:  # a third of the time one of this project's structural mutations, else libFuzzer's
            return fuzz_targets.mutate(data, seed >> 2, seed >> 7, seed >> 11)[:max_size]
        return bytes(atheris.Mutate(data, max_size))

    corpus = results.parent / "corpus"  # in the parent's temporary directory: gone with it
    corpus.mkdir(exist_ok=True)
    for i, seed in enumerate(fuzz_targets.corpus(target)):
        (corpus / f"seed-{i}").write_bytes(seed)
    write()
    argv = [sys.argv[0], f"-runs={runs}", "-timeout=5", "-max_len=2048", "-print_final_stats=0", str(corpus)]
    atheris.Setup(argv, one, custom_mutator=structural)
    atheris.Fuzz()


def _cost(name: str) -> float:
    """Seconds one call of the target costs, on its seeds (uninstrumented)."""
    from bench import fuzz_targets

    target = next(t for t in fuzz_targets.TARGETS if t.name == name)
    inputs = fuzz_targets.corpus(target) * 20
    started = time.perf_counter()
    for data in inputs:
        fuzz_targets.run(target, data)
    return (time.perf_counter() - started) / len(inputs)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz")
    parser.add_argument("--runs", type=int, default=0, help="inputs per target (default: by its cost)")
    parser.add_argument("--target", action="append", help="only these targets (repeatable)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.child:
        _child(args.child, args.runs, args.results)
        return 0
    from bench.fuzz_targets import TARGETS

    names = args.target or [t.name for t in TARGETS]
    rows, failed = [], False
    for name in names:
        cost = _cost(name)
        runs = args.runs or (FULL if cost < FAST_CALL_SECONDS else SLOW)
        with tempfile.TemporaryDirectory() as work:
            results = Path(work) / "results.json"
            started = time.monotonic()
            child = subprocess.run(
                [sys.executable, "-m", "bench.fuzz", "--child", name, "--runs", str(runs), "--results", str(results)],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
                check=False,
            )
            seconds = time.monotonic() - started
            counts: dict[str, Any] = json.loads(results.read_text()) if results.exists() else {}
        findings: dict[str, int] = dict(counts.get("findings", {}))
        inputs = int(counts.get("inputs", 0))
        if child.returncode == TIMEOUT_EXIT:
            findings["hang"] = findings.get("hang", 0) + 1
        elif child.returncode != 0:
            findings["crash"] = findings.get("crash", 0) + 1
            print(child.stderr[-2000:], file=sys.stderr)
        for kind, examples in counts.get("examples", {}).items():
            for example in examples:
                print(f"{name}: {kind}: {example['detail']} (input {example['input'][:80]}…)", file=sys.stderr)
        failed = failed or bool(findings)
        rows.append((name, inputs, seconds, cost, findings))
        print(f"{name}: {inputs:,} inputs in {seconds:.0f} s, findings {findings or 'none'}", file=sys.stderr)
    print(table(rows))
    return 1 if failed else 0


def table(rows: list[tuple[str, int, float, float, dict[str, int]]]) -> str:
    lines = [
        "| entry point | inputs | seconds | inputs/s | µs a call | untyped | round-trip / chunking | hangs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, inputs, seconds, cost, found in rows:
        promises = sum(n for kind, n in found.items() if kind not in ("untyped", "hang", "crash"))
        lines.append(
            f"| {name} | {inputs:,} | {seconds:.0f} | {inputs / max(seconds, 1e-9):,.0f} | {cost * 1e6:.1f} "
            f"| {found.get('untyped', 0) + found.get('crash', 0)} | {promises} | {found.get('hang', 0)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
