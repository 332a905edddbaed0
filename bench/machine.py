"""Where the machine's CPU went during a phase of a benchmark: the ledger, the load generator, PostgreSQL, the
rest of the machine (the kernel's networking, other programs), and what stayed idle. From Linux ``/proc``.

A latency figure on a machine whose cores are all busy says how the machine was shared as much as how fast the
ledger is: the bench's fleets (hundreds of tills signing every record and request) run on the same cores as the
ledger and PostgreSQL. So the figures come with this account, measured in the same run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

_TICK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    busy: float  # CPU seconds the whole machine spent on anything but idling (all cores)
    idle: float  # CPU seconds idle or waiting for a disk (all cores)
    ledger: dict[int, float]  # CPU seconds by pid: the ledger's processes, the ones named and their descendants
    generator: float  # this process: the load generator
    postgres: dict[int, float]  # CPU seconds by pid: every process named postgres


def _stat(pid: int | str) -> tuple[str, int, float] | None:
    """(name, parent pid, CPU seconds, user and system) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def process_cpu(pid: int) -> float:
    """The CPU a running process has spent, user and system: its own cost of a phase, whatever shares the
    machine (0 if it is gone)."""
    found = _stat(pid)
    return found[2] if found is not None else 0.0


async def during(ledger: Iterable[int], work: Awaitable[T]) -> tuple[T, dict[str, float]]:
    """``work``'s result, and where the machine's CPU went while it ran (:func:`shares`)."""
    pids = list(ledger)
    before = sample(pids)
    result = await work
    return result, shares(before, sample(pids))


def sample(ledger: Iterable[int]) -> Sample:
    """The machine now, with ``ledger``'s processes and their descendants counted as the ledger."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    idle = (ticks[3] + ticks[4]) / _TICK
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(p)) is not None}
    family = set(ledger)
    while grown := {pid for pid, (_, parent, _) in stats.items() if parent in family} - family:
        family |= grown  # children, then theirs (a worker's pool of signature checkers)
    ours = {pid: stats[pid][2] for pid in family if pid in stats}
    postgres = {pid: cpu for pid, (name, _, cpu) in stats.items() if name == "postgres"}
    own = stats.get(os.getpid(), ("", 0, 0.0))[2]
    return Sample(time.monotonic(), sum(ticks) / _TICK - idle, idle, ours, own, postgres)


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two samples by the processes alive at the second (one started since counts
    whole; one that ended since is not counted: its last moments are lost to "the rest")."""
    return sum(max(cpu - before.get(pid, 0.0), 0.0) for pid, cpu in after.items())


def shares(before: Sample, after: Sample) -> dict[str, float]:
    """Cores used on average between two samples: by the ledger, the generator, PostgreSQL, the rest; and idle.

    The five add up to the machine's cores (what a process spent and exited before ``after`` is in "the
    rest"; the machine's idle count may step back a little, as Linux's iowait can: never below 0).
    """
    wall = max(after.at - before.at, 1e-9)
    ledger = _spent(before.ledger, after.ledger) / wall
    generator = max(after.generator - before.generator, 0.0) / wall
    postgres = _spent(before.postgres, after.postgres) / wall
    busy = (after.busy - before.busy) / wall
    return {
        "ledger": ledger,
        "generator": generator,
        "postgres": postgres,
        "rest": max(busy - ledger - generator - postgres, 0.0),
        "idle": max(after.idle - before.idle, 0.0) / wall,
    }


def line(s: dict[str, float]) -> str:
    """The account in one line, in cores."""
    return (
        f"ledger {s['ledger']:.2f}, load generator {s['generator']:.2f}, PostgreSQL {s['postgres']:.2f}, "
        f"the rest {s['rest']:.2f}, idle {s['idle']:.2f} of {os.cpu_count()} cores"
    )
