"""Ingest throughput, each row beside its reference measured in the same run (ratios).

Text (perlfaq from Debian perl-doc, chunked to 200 tokens, MiniLM int8 ONNX):
  * plain loop        — one ONNX call per chunk, the reference (what a first implementation does)
  * encoder batched   — MiniLMEncoder.encode over all chunks (length-bucketed batches)
  * Engine.ingest serial     — extract + chunk + encode + SQLite + index, one input after the
                               other (``ingest_lookahead = 0``: the pre-pipeline path)
  * Engine.ingest pipelined  — the default: inputs prepared ahead in a worker while the writer
                               commits (``edgerag.ingest.pipeline``)

Images without OCR (JPEGs: 1024×768 drawn schematics and 300–640 px skimage photos):
  * model, one image per call — EfficientNet-Lite0 ``encode([image])`` per image, the reference
  * Engine.ingest one image per model call — serial, image batch 1 (the pre-batching path)
  * Engine.ingest batched     — the default: one forward pass per 16 consecutive images

    PYTHONPATH=src .venv/bin/python benchmarks/ingest_bench.py [--chunks 300] [--images 48]
    PYTHONPATH=src .venv/bin/python benchmarks/ingest_bench.py --compute int8   # minilm-q8
    PYTHONPATH=src .venv/bin/python benchmarks/ingest_bench.py --quality   # R@1 f32 vs int8
    .venv/bin/python benchmarks/ingest_bench.py --before /path/to/main/src  # vs another tree
    PYTHONPATH=src .venv/bin/python benchmarks/ingest_bench.py --profile   # cProfile by stage

``ingest_ratio()`` is the callable ``bench_check.py`` gates on: pipelined ingest chunks/s over
the plain encoder loop's, interleaved round by round on the same machine.
"""

from __future__ import annotations

import argparse
import cProfile
import glob
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgerag import Engine, EngineConfig
from edgerag.bench.synthetic import sample_images
from edgerag.encoders.minilm import MiniLMEncoder
from edgerag.ingest.chunking import WordpieceSpans, chunk_pages

INGEST_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # its inputs since round 2

PERLFAQ = "/usr/share/perl/5.36/pod/perlfaq[1-9].pod"


# ---- inputs ---------------------------------------------------------------------------------
def perlfaq_documents(max_chunks: int) -> tuple[list[tuple[str, bytes]], list[str]]:
    """perlfaq cut into documents of about 40 chunks (manual-section sized), as ``.txt``
    inputs, until ``max_chunks`` chunks; plus those chunks' texts (for the encoder rows)."""
    spans = WordpieceSpans()
    docs: list[tuple[str, bytes]] = []
    texts: list[str] = []
    for path in sorted(glob.glob(PERLFAQ)):
        lines = Path(path).read_text(errors="replace").splitlines(keepends=True)
        step = 600  # lines per document: ~40 chunks of 200 tokens
        for part, start in enumerate(range(0, len(lines), step)):
            text = "".join(lines[start : start + step])
            chunks = [c.text for c in chunk_pages([(None, text)], spans, 200, 50)]
            if not chunks:
                continue
            docs.append((f"{Path(path).stem}-{part}.txt", text.encode()))
            texts += chunks
            if len(texts) >= max_chunks:
                return docs, texts
    return docs, texts


# ---- measurements ---------------------------------------------------------------------------
def rate(n: int, fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def plain_loop(encoder: MiniLMEncoder, texts: list[str]) -> float:
    """Chunks/s with one ONNX call per chunk: the reference. Calls the class's ``encode``: an
    Engine given this encoder installs its query memo on the instance, which would answer
    repeated short texts from memory."""
    encode = type(encoder).encode
    return rate(len(texts), lambda: [encode(encoder, [t]) for t in texts])


def engine_ingest(
    inputs: list[tuple[str, bytes]],
    encoder: Any = None,
    lookahead: int | None = None,
    image_batch: int | None = None,
    config: EngineConfig | None = None,
    media: Any = None,
) -> tuple[float, int]:
    """(items/s, items) of one ``Engine.ingest`` call into a fresh on-disk collection."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        Engine.open(Path(tmp) / "db", config, encoder) as engine,
    ):
        if lookahead is not None:
            engine.ingest_lookahead = lookahead
        if image_batch is not None:
            engine.ingest_image_batch = image_batch
        if media is not None:
            engine._media = media  # noqa: SLF001 - share loaded models between runs
        t0 = time.perf_counter()
        report = engine.ingest(inputs)
        took = time.perf_counter() - t0
    assert report.ok, report.errors
    return report.items / took, report.items


def ingest_ratio(chunks: int = 120, rounds: int = 3, threads: int | None = None) -> dict[str, Any]:
    """Pipelined ``Engine.ingest`` chunks/s over the plain encoder loop's chunks/s on the same
    chunks, interleaved round by round (median of per-round ratios): what bench_check gates."""
    docs, texts = perlfaq_documents(chunks)
    encoder = MiniLMEncoder(threads=threads)
    encoder.encode(texts[:4])  # warm-up outside the timing
    ratios, plain_rates, ingest_rates = [], [], []
    for _ in range(rounds):
        plain = plain_loop(encoder, texts)
        ingested, _ = engine_ingest(docs, encoder)
        plain_rates.append(plain)
        ingest_rates.append(ingested)
        ratios.append(ingested / plain)
    return {
        "ingest_over_plain": round(statistics.median(ratios), 4),
        "ratio_spread": [round(min(ratios), 4), round(max(ratios), 4)],
        "chunks_per_s": {
            "plain_loop": round(statistics.median(plain_rates), 1),
            "ingest": round(statistics.median(ingest_rates), 1),
        },
        "chunks": len(texts),
    }


def text_rows(
    chunks: int, threads: int | None, compute: str = "f32"
) -> list[tuple[str, float, float]]:
    """Rows vs the reference: the shipped model (f32 compute), one ONNX call per chunk."""
    docs, texts = perlfaq_documents(chunks)
    reference = MiniLMEncoder(threads=threads)
    encoder = reference if compute == "f32" else MiniLMEncoder(threads=threads, compute=compute)
    for enc in {id(reference): reference, id(encoder): encoder}.values():
        enc.encode(texts[:8])  # warm-up
    plain = plain_loop(reference, texts)
    rows: list[tuple[str, float]] = []
    if encoder is not reference:
        rows.append((f"plain loop, {compute} compute", plain_loop(encoder, texts)))
    batched = rate(len(texts), lambda: encoder.encode(texts))
    shape = (
        f"runs of ≤ {encoder.batch_size} texts / {encoder.batch_tokens} tokens, "
        f"{encoder.workers} at once"
    )
    rows.append((f"MiniLMEncoder.encode, {compute}, {shape}", batched))
    serial, n = engine_ingest(docs, encoder, lookahead=0)
    rows.append((f"Engine.ingest serial (lookahead 0), {compute}, {n} chunks", serial))
    piped, _ = engine_ingest(docs, encoder)
    rows.append((f"Engine.ingest pipelined (default), {compute}, {n} chunks", piped))
    ref = (plain + plain_loop(reference, texts)) / 2  # the machine may change meanwhile
    first = f"plain loop, f32 compute, one ONNX call per chunk (reference; {len(texts)} chunks)"
    return [(first, ref, 1.0)] + [(name, speed, speed / ref) for name, speed in rows]


def image_rows(n_images: int) -> list[tuple[str, float, float]]:
    from edgerag.ingest.extract.image import decode_image
    from edgerag.ingest.limits import Limits
    from edgerag.ingest.media import MediaPipeline

    images = sample_images(n_images, photos=INGEST_PHOTOS)
    media = MediaPipeline(ocr=False)
    config = EngineConfig(ocr=False)
    decoded = [decode_image(s, d, Limits()).image for s, d in images]
    media.visual.encode(decoded[:2])  # warm-up
    encoder = MiniLMEncoder()
    encoder.encode(["warm up"])
    ref = rate(n_images, lambda: [media.visual.encode([im]) for im in decoded])
    one, _ = engine_ingest(images, encoder, lookahead=0, image_batch=1, config=config, media=media)
    batched, _ = engine_ingest(images, encoder, config=config, media=media)
    model_batched = rate(n_images, lambda: media.visual.encode(decoded))
    return [
        (f"model only, one image per call (reference; {n_images} JPEGs)", ref, 1.0),
        ("model only, batches of 16", model_batched, model_batched / ref),
        ("Engine.ingest, serial, one image per model call", one, one / ref),
        ("Engine.ingest, pipelined, 16 images per model call (default)", batched, batched / ref),
    ]


_SNIPPET = """
import json, sys
sys.path.insert(0, {bench!r})
import ingest_bench as b
from edgerag import EngineConfig
from edgerag.ingest.media import MediaPipeline
docs, _ = b.perlfaq_documents({chunks})
images = b.sample_images({images}, photos=b.INGEST_PHOTOS)
media = MediaPipeline(ocr=False)
b.engine_ingest(images[:2], config=EngineConfig(ocr=False), media=media)  # load the models
text, _ = b.engine_ingest(docs)
img, _ = b.engine_ingest(images, config=EngineConfig(ocr=False), media=media)
print(json.dumps({{"text": text, "images": img}}))
"""


def before_after(before_src: str, chunks: int, images: int, rounds: int = 2) -> None:
    """End-to-end ``Engine.ingest`` chunks/s and images/s of another source tree (e.g. main's
    ``src``, before this change) and of this one, in alternating subprocesses, same inputs."""
    import json
    import subprocess
    import sys

    here = str(Path(__file__).resolve().parents[1] / "src")
    code = _SNIPPET.format(bench=str(Path(__file__).parent), chunks=chunks, images=images)
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(rounds):
        for label, src in (("before", before_src), ("after", here)):
            env = {**os.environ, "PYTHONPATH": src}
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\nbefore = {before_src}, after = {here}; {rounds} alternating rounds, medians")
    print("| Engine.ingest | before | after | after / before |")
    print("|---|---:|---:|---:|")
    for key, unit in (("text", "chunks/s"), ("images", "images/s (no OCR)")):
        b = statistics.median(r[key] for r in runs["before"])
        a = statistics.median(r[key] for r in runs["after"])
        print(f"| {unit} | {b:.1f} | {a:.1f} | {a / b:.2f}× |")


def quality(threads: int | None) -> None:
    """Dense retrieval R@1 / R@5 (question → its answer passage) on the dev Q/A sets and CPU
    time per text, for the f32-compute model (default) and the int8-compute one."""
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from answer_bench import load_zaragoza
    from multimodal_bench import perlfaq

    sets = {
        "perlfaq": perlfaq(),
        "zaragoza": [(qa.question, qa.answer) for qa in load_zaragoza()],
    }
    print("| encoder | set | pairs | R@1 | R@5 | CPU ms per text | cosine to f32 (mean / min) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    reference: dict[str, np.ndarray] = {}
    for compute in ("f32", "int8"):
        encoder = MiniLMEncoder(threads=threads, compute=compute)
        for name, pairs in sets.items():
            texts = [a for _, a in pairs] + [q for q, _ in pairs]
            t0 = time.process_time()
            vectors = encoder.encode(texts)
            cpu_ms = (time.process_time() - t0) * 1000 / len(texts)
            answers, questions = vectors[: len(pairs)], vectors[len(pairs) :]
            scores = questions @ answers.T
            gold = scores[np.arange(len(pairs)), np.arange(len(pairs))]
            rank = (scores > gold[:, None]).sum(axis=1)
            reference.setdefault(name, vectors)
            cos = (vectors * reference[name]).sum(axis=1)
            print(
                f"| minilm {compute} | {name} | {len(pairs)} | {(rank < 1).mean():.3f} | "
                f"{(rank < 5).mean():.3f} | {cpu_ms:.1f} | {cos.mean():.4f} / {cos.min():.4f} |"
            )


def profile(chunks: int) -> None:
    """cProfile of a serial text ingest (lookahead 0, so every stage runs on this thread),
    timed in process CPU time: onnxruntime's pool threads count for the call that runs them,
    and other processes on a shared box do not inflate a stage."""
    docs, _ = perlfaq_documents(chunks)
    encoder = MiniLMEncoder()
    encoder.encode(["warm up"])
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    speed, n = engine_ingest(docs, encoder, lookahead=0)
    profiler.disable()
    print(f"serial ingest of {n} chunks: {speed:.1f} chunks/s")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=300, help="text chunks per row")
    parser.add_argument("--images", type=int, default=48, help="images per row (0: skip)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--profile", action="store_true", help="cProfile a serial ingest")
    parser.add_argument(
        "--quality", action="store_true", help="R@1 of f32 vs int8 compute on the dev sets"
    )
    parser.add_argument(
        "--compute", choices=("f32", "int8"), default="f32", help="MiniLM compute (text rows)"
    )
    parser.add_argument(
        "--before", metavar="SRC", help="also compare end to end with another src tree"
    )
    args = parser.parse_args()
    if args.before:
        before_after(args.before, args.chunks, args.images or 16)
        return
    if args.profile:
        profile(args.chunks)
        return
    if args.quality:
        quality(args.threads)
        return
    load = os.getloadavg()
    rows = text_rows(args.chunks, args.threads, args.compute)
    text_goal = rows[-1][1] >= 60
    if args.images:
        rows += image_rows(args.images)
    load_after = os.getloadavg()
    print(
        f"\n{os.cpu_count()} cores; load average {load[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    print("| pipeline | items/s | vs reference |")
    print("|---|---:|---:|")
    for name, speed, ratio in rows:
        print(f"| {name} | {speed:.1f} | {ratio:.2f}× |")
    print(f"\ngoal text ingest ≥ 60 chunks/s: {'met' if text_goal else 'not met'}")
    if args.images:
        print(f"goal images ≥ 30 images/s: {'met' if rows[-1][1] >= 30 else 'not met'}")


if __name__ == "__main__":
    main()
