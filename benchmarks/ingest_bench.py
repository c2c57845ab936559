"""Text ingest throughput: 200-token chunks per second through MiniLM int8 ONNX.

Compares, on the same real chunks (perlfaq from Debian perl-doc, chunked to 200 tokens):
  * plain loop   — one ONNX call per chunk (what a first implementation does, ~25/s here)
  * edgerag      — MiniLMEncoder: length-bucketed batches (no padding waste)
  * end to end   — Engine.ingest of the perlfaq files (extract + chunk + encode + SQLite + index)

    .venv/bin/python benchmarks/ingest_bench.py [--limit 400] [--threads 2]
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edgerag import Engine
from edgerag.encoders.minilm import MiniLMEncoder
from edgerag.ingest.chunking import WordpieceSpans, chunk_pages

PERLFAQ = "/usr/share/perl/5.36/pod/perlfaq[1-9].pod"


def chunks(limit: int) -> list[str]:
    spans = WordpieceSpans()
    out: list[str] = []
    for path in sorted(glob.glob(PERLFAQ)):
        text = Path(path).read_text(errors="replace")
        out += [c.text for c in chunk_pages([(None, text)], spans, 200, 50)]
    return out[:limit]


def plain_loop(encoder: MiniLMEncoder, texts: list[str]) -> float:
    t0 = time.perf_counter()
    for text in texts:
        encoder.encode([text])
    return len(texts) / (time.perf_counter() - t0)


def bucketed(encoder: MiniLMEncoder, texts: list[str]) -> float:
    t0 = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - t0)


def end_to_end() -> tuple[float, int]:
    # .pod is not a suffix we ingest; the text is plain enough to go in as .txt
    files = [(Path(p).stem + ".txt", Path(p).read_bytes()) for p in sorted(glob.glob(PERLFAQ))]
    with tempfile.TemporaryDirectory() as tmp, Engine.open(Path(tmp) / "db") as engine:
        t0 = time.perf_counter()
        report = engine.ingest(files)
        assert report.ok, report.errors
        took = time.perf_counter() - t0
    return report.items / took, report.items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=400, help="chunks for the encoder runs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    texts = chunks(args.limit)
    lengths = [len(t.split()) for t in texts]
    encoder = MiniLMEncoder(threads=args.threads)
    encoder.encode(texts[:8])  # warm-up
    plain = plain_loop(encoder, texts[:100])
    rows = [("plain loop (batch 1)", plain)]
    for batch in (8, 32, 64):
        encoder.batch_size = batch
        rows.append((f"edgerag bucketed, batch {batch}", bucketed(encoder, texts)))
    e2e, n = end_to_end()
    rows.append((f"Engine.ingest perlfaq (extract+chunk+encode+store+index, {n} chunks)", e2e))
    print(
        f"\n{len(texts)} chunks of ≤200 tokens (median {int(np.median(lengths))} words), "
        f"{args.threads} threads, {os.cpu_count()} cores\n"
    )
    print("| pipeline | chunks/s | vs plain loop |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} | {rate / plain:.2f}× |")


if __name__ == "__main__":
    main()
