"""Where rescoring reads from, and what it costs in resident memory: one kept index, variants
side by side (recall@10 vs exact, p50, RSS per vector from a clean baseline in a new process).

Variants on the same faiss int8 checkpoint (built by ``index_bench.py --keep``):

* ``originals`` — rescoring on the mapped f32 file (the default): each page fault also maps
  the kernel's fault-around neighbours (16 pages) that the page cache holds;
* ``f16`` — ``IndexConfig(rescore="f16")``: an in-memory half copy, the mapping stays cold;
* ``no rescoring`` — ``oversample=1``: the SQ8 codes' own ranking (the floor of memory).

    PYTHONPATH=src python benchmarks/index_bench.py --n 100000 --dim 512 --engines faiss \\
        --quant int8 --keep /tmp/idx            # once: builds and keeps the index
    PYTHONPATH=src python benchmarks/rescore_bench.py \\
        --index /tmp/idx/faiss-int8-n100000-d512-M32-efc200
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from index_bench import exact_topk, recall, warm_rss_per_vector  # noqa: E402

from edgerag.bench.synthetic import clustered  # noqa: E402
from edgerag.index.base import IndexConfig  # noqa: E402
from edgerag.index.space import SpaceIndex  # noqa: E402
from edgerag.types import SpaceSpec  # noqa: E402

# name → IndexConfig changes
VARIANTS: dict[str, dict] = {
    "originals (default)": {},
    "f16 copy": {"rescore": "f16"},
    "no rescoring (oversample 1)": {"oversample": 1.0},
}


def open_space(path: Path, cfg: IndexConfig, dim: int) -> SpaceIndex:
    return SpaceIndex.open(path, SpaceSpec("bench", "synthetic", "1", dim), cfg)


def probe(args: argparse.Namespace) -> None:
    """Child: baseline RSS, open, search every query once, RSS again (per vector)."""
    cfg = IndexConfig(**json.loads(args.probe_config))
    queries = np.load(args.probe_queries)
    out = warm_rss_per_vector(lambda: open_space(Path(args.index), cfg, args.dim), queries)
    out["anon_B_per_vec"] = out.pop("heap_B_per_vec")
    print(json.dumps(out))


def run_probe(args: argparse.Namespace, cfg: IndexConfig, qpath: Path) -> dict:
    cmd = [sys.executable, __file__, "--index", str(args.index), "--dim", str(args.dim)]
    cmd += ["--probe-config", json.dumps(dataclasses.asdict(cfg)), "--probe-queries", str(qpath)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--n", type=int, default=100_000, help="as index_bench --n (regenerates data)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--seed", type=int, default=42, help="as index_bench --seed")
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--json", dest="json_path", type=Path)
    p.add_argument("--probe-config", help=argparse.SUPPRESS)
    p.add_argument("--probe-queries", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.probe_config:
        probe(args)
        return
    data = clustered(args.n, args.dim, args.seed)
    rng = np.random.default_rng(args.seed + 99)  # other queries than index_bench's
    queries = data[rng.integers(0, args.n, args.queries)] + 0.3 * rng.standard_normal(
        (args.queries, args.dim), dtype=np.float32
    ) / np.sqrt(args.dim)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    truth = exact_topk(data, queries, 10)
    del data
    base = IndexConfig()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        qpath = Path(td) / "q.npy"
        np.save(qpath, queries)
        for name, change in VARIANTS.items():
            cfg = dataclasses.replace(base, **change)
            row = {"variant": name, **run_probe(args, cfg, qpath)}
            space = open_space(args.index, cfg, args.dim)
            lat, found = [], []
            for i in range(len(queries)):
                t0 = time.perf_counter()
                res, _ = space.search(queries[i : i + 1], 10)
                lat.append((time.perf_counter() - t0) * 1e3)
                found.append(res.keys[0])
            space.close()
            row["recall@10"] = round(recall(np.stack(found), truth), 4)
            row["p50_ms"] = round(float(np.percentile(lat, 50)), 3)
            row["p99_ms"] = round(float(np.percentile(lat, 99)), 3)
            row["load"] = round(os.getloadavg()[0], 1)
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    cols = ["variant", "recall@10", "p50_ms", "p99_ms", "rss_open_B_per_vec", "rss_B_per_vec"]
    cols += ["anon_B_per_vec", "file_B_per_vec", "load"]
    print(f"\n{args.index.name}, {args.queries} queries (RSS warm = after each query once)\n")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    if args.json_path:
        args.json_path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
