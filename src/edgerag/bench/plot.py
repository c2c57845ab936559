"""PNG of a bench report: latency vs concurrency, and recall vs latency (the ef sweep)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgerag.errors import MissingExtraError

logger = logging.getLogger(__name__)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("matplotlib", "bench", "bench plots") from exc
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _ticker() -> Any:
    import matplotlib.ticker

    return matplotlib.ticker


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Write a two-panel PNG for ``report`` (as returned by the bench runner) to ``path``."""
    plt = _pyplot()
    rk = report["options"]["recall_k"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for row in report["targets"]:
        levels = row["levels"]
        conc = [lv["concurrency"] for lv in levels]
        (line,) = left.plot(
            conc, [lv["e2e"]["p95"] for lv in levels], "o-", label=f"{row['index']} P95"
        )
        left.plot(
            conc,
            [lv["e2e"]["p50"] for lv in levels],
            "s--",
            color=line.get_color(),
            alpha=0.6,
            label=f"{row['index']} P50",
        )
        sweep = row["sweep"]
        right.plot(
            [s["p50_ms"] for s in sweep],
            [s[f"recall@{rk}"] for s in sweep],
            "o-",
            color=line.get_color(),
            label=row["index"],
        )
        for s in sweep:
            right.annotate(
                f"ef {s['ef']}",
                (s["p50_ms"], s[f"recall@{rk}"]),
                fontsize=7,
                xytext=(3, -9),
                textcoords="offset points",
            )
    budget = report["options"]["p95_budget_ms"]
    left.axhline(budget, color="red", linestyle=":", label=f"budget {budget:g} ms")
    left.set_xscale("log", base=2)
    levels_all = sorted({lv["concurrency"] for r in report["targets"] for lv in r["levels"]})
    left.set_xticks(levels_all)
    left.xaxis.set_major_formatter(_ticker().ScalarFormatter())
    left.xaxis.set_minor_formatter(_ticker().NullFormatter())
    left.set_yscale("log")
    left.set_xlabel("concurrent clients (closed loop)")
    left.set_ylabel(f"end-to-end ms (top-{report['options']['k']} with payload)")
    left.set_title("latency vs concurrency")
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)
    right.set_xlabel("P50 ms, 1 client")
    right.set_ylabel(f"recall@{rk} vs exact")
    right.set_title("recall vs latency (HNSW ef_search sweep)")
    right.legend(fontsize=7)
    right.grid(True, alpha=0.3)
    src = report["collection"]
    fig.suptitle(
        f"edgerag bench: {src['vectors']:,} × {src['dim']} ({src['source']}), "
        f"{report['machine']['cores']} cores",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    logger.info("wrote %s", path)
    return path
