"""Percentiles and a one-line report."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank, of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
    }


def line(label: str, s: dict[str, float]) -> str:
    return f"  {label:<44} n={int(s['n']):>5}  p50 {s['p50_ms']:8.3f} ms  p99 {s['p99_ms']:8.3f} ms"
