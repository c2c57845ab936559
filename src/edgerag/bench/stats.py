"""Benchmark statistics: latency summaries, recall@k, the PASS/FAIL verdict, memory readings."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Latency:
    """Summary of one latency sample in milliseconds.

    Percentiles use linear interpolation between closest ranks (numpy's default), so the P95
    of 1..100 ms is 95.05 ms.
    """

    n: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_ms: Sequence[float] | npt.NDArray[np.float64]) -> Latency:
        """Summarise ``samples_ms``; raises ValueError on an empty sample."""
        x = np.asarray(samples_ms, dtype=np.float64)
        if x.size == 0:
            raise ValueError("no latency samples to summarise")
        if not np.isfinite(x).all() or (x < 0).any():
            raise ValueError("latency samples must be finite and non-negative")
        p50, p95, p99 = np.percentile(x, [50, 95, 99])
        return cls(int(x.size), float(x.mean()), float(p50), float(p95), float(p99), float(x.max()))

    def to_dict(self, digits: int = 3) -> dict[str, Any]:
        return {
            k: (round(v, digits) if isinstance(v, float) else v) for k, v in asdict(self).items()
        }


def percentile(values: Sequence[float] | npt.NDArray[np.float64], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, NaN when there are none.

    Linear interpolation between closest ranks (numpy's default, as in :class:`Latency`): every
    benchmark script reports its p50/p95/p99 through this one definition, so two scripts'
    numbers of the same sample agree.
    """
    x = np.asarray(values, dtype=np.float64)
    return float(np.percentile(x, q)) if x.size else float("nan")


def recall_at_k(found: npt.ArrayLike, truth: npt.ArrayLike, k: int = 10) -> float:
    """Mean share of each query's true top-``k`` keys found in its returned top-``k``.

    ``found`` and ``truth`` are (nq, ≥k) key arrays; -1 pads missing results. A query whose
    truth has fewer than ``k`` valid keys (tiny collections) counts against what exists.
    """
    f = np.asarray(found)[:, :k]
    t = np.asarray(truth)[:, :k]
    if f.shape[0] != t.shape[0]:
        raise ValueError(f"found has {f.shape[0]} queries, truth {t.shape[0]}")
    hits = total = 0
    for frow, trow in zip(f, t, strict=True):
        want = set(trow[trow >= 0].tolist())
        hits += len(want & set(frow[frow >= 0].tolist()))
        total += len(want)
    return 1.0 if total == 0 else hits / total


@dataclass(frozen=True)
class Verdict:
    """The deployment gate: P95 end-to-end latency at one concurrency against a budget."""

    passed: bool
    p95_ms: float
    budget_ms: float
    concurrency: int
    queries: int
    k: int

    @property
    def line(self) -> str:
        word = "PASS" if self.passed else "FAIL"
        op = "<=" if self.passed else ">"
        return (
            f"{word}: P95 {self.p95_ms:.2f} ms {op} budget {self.budget_ms:g} ms "
            f"at concurrency {self.concurrency} ({self.queries} queries, top-{self.k} with payload)"
        )


def verdict(p95_ms: float, budget_ms: float, concurrency: int, queries: int, k: int) -> Verdict:
    """PASS when the measured P95 is at most the budget."""
    if budget_ms <= 0:
        raise ValueError(f"P95 budget must be > 0 ms, got {budget_ms}")
    return Verdict(p95_ms <= budget_ms, p95_ms, budget_ms, concurrency, queries, k)


def anon_rss_bytes() -> int:
    """Anonymous resident memory (heap, index structures), without file-backed mmap pages.

    File pages (memory-mapped originals) are page cache the kernel can evict; anonymous pages
    are what an index needs to stay resident. Linux only; elsewhere the total RSS.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss_bytes()


def rss_bytes() -> int:
    """Resident set size of this process (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)
