"""What provable erasure costs: time of one delete (FTS merge, WAL truncate, index checkpoint
with originals and ANN engine compaction) per index backend and collection size.

    PYTHONPATH=src python benchmarks/erasure_bench.py [--items 2000,10000] [--deletes 3]

Uses the hash encoder (64-d) so the numbers are the store and index work, not embedding.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.encoders.fake import HashEncoder
from edgerag.store.ops import UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
from edgerag.types import item_key

PER_DOC = 10


def _ops(n_items: int, encoder: HashEncoder, rng: np.random.Generator) -> list[Op]:
    ops = []
    for d in range(n_items // PER_DOC):
        doc_id = f"doc-{d}"
        keys = np.array([item_key(doc_id, i) for i in range(PER_DOC)], dtype=np.int64)
        texts = [f"document {d} part {i} pump seal {rng.integers(1e9)}" for i in range(PER_DOC)]
        ops.append(
            Op(
                kind=UPSERT,
                doc_id=doc_id,
                document=DocumentRecord(doc_id, doc_id, "text", "text/plain", str(d), 1),
                items=[
                    ItemRecord(int(k), f"{doc_id}#{i}", i, "text", t)
                    for i, (k, t) in enumerate(zip(keys, texts, strict=True))
                ],
                vectors={
                    "text": SpaceVectors(encoder.id, encoder.version, keys, encoder.encode(texts))
                },
            )
        )
    return ops


def measure(
    backend: str, quantization: str, n_items: int, deletes: int, rebuild: bool
) -> list[float]:
    encoder = HashEncoder()
    rng = np.random.default_rng(1)
    config = EngineConfig(
        encoder="hash",
        index=IndexConfig(backend=backend, quantization=quantization),
        erase_rebuilds_index=rebuild,
    )
    with tempfile.TemporaryDirectory() as tmp, Engine.open(Path(tmp) / "kb", config) as engine:
        ops = _ops(n_items, encoder, rng)
        for start in range(0, len(ops), 200):
            engine.apply_many(ops[start : start + 200])
        engine.checkpoint()
        times = []
        for d in range(deletes):
            started = time.perf_counter()
            engine.delete(f"doc-{d}")
            times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", default="2000,10000")
    parser.add_argument("--deletes", type=int, default=3)
    parser.add_argument("--backends", default="flat:f32,faiss:int8,usearch:int8")
    parser.add_argument("--rebuild", default="on,off", help="erase_rebuilds_index settings")
    args = parser.parse_args()
    print("| backend | items | erase_rebuilds_index | delete p50 ms | max ms |")
    print("|---|---:|---|---:|---:|")
    for n in (int(x) for x in args.items.split(",")):
        for pair in args.backends.split(","):
            backend, quantization = pair.split(":")
            for setting in args.rebuild.split(","):
                if backend == "flat" and setting == "off":
                    continue  # nothing to rebuild
                times = measure(backend, quantization, n, args.deletes, setting == "on")
                print(
                    f"| {backend} {quantization} | {n} | {setting} | "
                    f"{statistics.median(times):.0f} | {max(times):.0f} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
