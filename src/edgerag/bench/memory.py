"""Index memory measured in a fresh process: ``python -m edgerag.bench.memory SPEC.json``.

In the benchmarking process, memory freed by earlier builds stays in the allocator's heap and
hides what an index takes; a fresh interpreter that imports the engine library, records its RSS,
opens the checkpointed index and warms it with a few queries gives a clean reading.
"""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgerag.bench.stats import anon_rss_bytes, rss_bytes
from edgerag.index.base import IndexConfig
from edgerag.index.space import SpaceIndex
from edgerag.types import SpaceSpec, Vectors

logger = logging.getLogger(__name__)

CHILD_TIMEOUT_S = 600


def index_memory(space: SpaceIndex, queries: Vectors) -> dict[str, float]:
    """Memory of ``space``'s last checkpoint reopened in a child process, per vector.

    Returns ``rss_B_per_vec`` (everything resident, as ``top`` shows it, including the
    memory-mapped f32 originals that warm-up queries faulted in), ``anon_B_per_vec`` (anonymous
    memory only: the index structures that must stay resident; mapped originals are evictable
    page cache) and ``open_s``. NaN when the probe fails.
    """
    with tempfile.TemporaryDirectory(prefix="edgerag-rss-") as tmp:
        qpath = Path(tmp) / "queries.npy"
        np.save(qpath, np.ascontiguousarray(queries[:50], dtype=np.float32))
        job = {
            "directory": str(space.directory),
            "spec": asdict(space.spec),
            "config": asdict(space.config),
            "queries": str(qpath),
        }
        spec_path = Path(tmp) / "job.json"
        spec_path.write_text(json.dumps(job))
        proc = subprocess.run(
            [sys.executable, "-m", "edgerag.bench.memory", str(spec_path)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            check=False,
        )
    nan = float("nan")
    if proc.returncode != 0:
        logger.warning("memory probe failed: %s", proc.stderr.strip()[-500:])
        return {"rss_B_per_vec": nan, "anon_B_per_vec": nan, "open_s": nan}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    n = max(1, out["count"])
    return {
        "rss_B_per_vec": out["rss_delta"] / n,
        "anon_B_per_vec": out["anon_delta"] / n,
        "open_s": out["open_s"],
    }


def _probe(job: dict[str, object]) -> dict[str, float]:
    config = IndexConfig(**job["config"])  # type: ignore[arg-type]
    spec = SpaceSpec(**job["spec"])  # type: ignore[arg-type]
    queries = np.load(str(job["queries"]))
    if config.backend != "flat":
        from edgerag._optional import require

        require(config.backend)  # the library's own code is not the index's memory
    gc.collect()
    rss0, anon0 = rss_bytes(), anon_rss_bytes()
    t0 = time.perf_counter()
    index = SpaceIndex.open(Path(str(job["directory"])), spec, config)
    open_s = time.perf_counter() - t0
    for i in range(len(queries)):
        index.search(queries[i : i + 1], 10)
    gc.collect()
    return {
        "rss_delta": rss_bytes() - rss0,
        "anon_delta": anon_rss_bytes() - anon0,
        "open_s": open_s,
        "count": len(index),
    }


if __name__ == "__main__":
    print(json.dumps(_probe(json.loads(Path(sys.argv[1]).read_text()))))  # noqa: T201
