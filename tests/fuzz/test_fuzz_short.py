"""The short fuzz run in ``make test``: every harness of ``bench/fuzz_targets.py``, under hypothesis.

Deterministic (derandomized), a few hundred inputs per entry point: the seeds,
structural mutations of them (bit flips, truncation, splicing, huge numbers,
deep nesting, bad Unicode, wrong types) and raw bytes. ``make fuzz`` runs the
same harnesses under atheris, coverage-guided, for a million inputs each.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz_targets import TARGETS, Target, mutate, run


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    mutated = st.builds(
        mutate,
        st.sampled_from(target.seeds),
        st.integers(0, 80),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    )
    return st.one_of(st.sampled_from(target.seeds), mutated, st.binary(max_size=300))


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_only_typed_errors_escape_and_promises_hold(target: Target) -> None:
    @settings(max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(inputs(target))
    def check(data: bytes) -> None:
        run(target, data)

    check()
