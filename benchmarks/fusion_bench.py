"""Early vs late fusion, and query latency by modality, through the real Engine.

Collection: perlfaq answers (Debian perl-doc; 306 passages) + the demo media (images, voice
notes, video) + WordNet glosses (Debian wordnet-base) as padding up to ``--items`` (default 100k),
all encoded with the default MiniLM int8 encoder; built once into ``~/.cache/edgerag-bench``.

Queries (perlfaq, relevant = the question's own answer passage):
  * text + voice: a typed hint (the question's first content words) + the full question
    spoken by espeak-ng → Whisper tiny.en. Early fusion: ONE fused text-space vector and ONE
    BM25; late fusion: one dense search + one BM25 per modality, merged with RRF.
Latencies exclude ASR (transcripts are computed once and memoised, the same for both modes);
the ASR time is reported separately, as is OCR of a query photo.

    .venv/bin/python benchmarks/fusion_bench.py [--items 100000] [--queries 80]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import random
import re
import statistics
import time
from pathlib import Path

import numpy as np
from multimodal_bench import perlfaq, speak  # noqa: E402  (same directory)

from edgerag import Engine, Query
from edgerag.bench.stats import percentile as pct
from edgerag.store.ops import UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
from edgerag.types import item_key

CACHE = Path(os.environ.get("EDGERAG_BENCH_CACHE", Path.home() / ".cache" / "edgerag-bench"))
DEMO = Path(__file__).resolve().parents[1] / "demo"
STOP = set(
    "a an and are as at be by can do does for from how i in is it my of on or the to what "
    "when where which who why with you your".split()
)


def glosses(limit: int) -> list[str]:
    out: list[str] = []
    for path in sorted(glob.glob("/usr/share/wordnet/data.*")):
        for line in Path(path).read_text(errors="replace").splitlines():
            if "|" in line and not line.startswith(" "):
                words = re.findall(r"\d{2} [a-z] \S+ \S+ ([A-Za-z_'-]+)", line)
                gloss = line.split("|", 1)[1].strip()
                out.append(f"{words[0].replace('_', ' ') if words else ''}: {gloss}")
                if len(out) >= limit:
                    return out
    return out


def build(items: int) -> Path:
    db = CACHE / f"fusion-{items}"
    if (db / "store.db").exists():
        return db
    with Engine.open(db) as engine:
        pairs = perlfaq()
        engine.ingest([(f"perlfaq-{i}.txt", body.encode()) for i, (_, body) in enumerate(pairs)])
        engine.ingest([DEMO / "media"])
        pad = glosses(max(0, items - engine.stats()["spaces"]["text"]["vectors"]))
        for start in range(0, len(pad), 2000):
            _bulk(engine, f"wordnet-{start}", pad[start : start + 2000])
            print(f"  padded {start + 2000}/{len(pad)}", flush=True)
    return db


def _bulk(engine: Engine, doc_id: str, texts: list[str]) -> None:
    """One op per 2,000 glosses: the op path, without per-file overhead."""
    keys = np.array([item_key(doc_id, i) for i in range(len(texts))], dtype=np.int64)
    vectors = engine.encoder.encode(texts)
    items = [
        ItemRecord(key=int(k), item_id=f"{doc_id}#{i}", position=i, modality="text", text=t)
        for i, (k, t) in enumerate(zip(keys, texts, strict=True))
    ]
    doc = DocumentRecord(
        doc_id, doc_id, "text", "text/plain", hashlib.sha256("".join(texts).encode()).hexdigest(), 0
    )
    sv = SpaceVectors(engine.encoder.id, engine.encoder.version, keys, vectors)
    engine.apply(Op(kind=UPSERT, doc_id=doc_id, document=doc, items=items, vectors={"text": sv}))


def hint(question: str, words: int = 3) -> str:
    content = [w for w in re.findall(r"\w+", question) if w.lower() not in STOP]
    return " ".join(content[:words])


def run_fusion(engine: Engine, queries: list[tuple[str, bytes, str]], mode: str) -> list[list[str]]:
    """Early and late on the same queries, interleaved (alternating which goes first) so
    neither mode gets the warmer caches."""
    fusions = ("early", "late")
    ranks: dict[str, list[int]] = {f: [] for f in fusions}
    lat: dict[str, list[float]] = {f: [] for f in fusions}
    searches: dict[str, int] = {}
    for n, (text, wav, doc_id) in enumerate(queries):
        for fusion in fusions if n % 2 == 0 else fusions[::-1]:
            r = engine.search(Query(text=text, audio=wav), k=10, fusion=fusion, mode=mode)
            lat[fusion].append(r.timings_ms["total"])
            ids = [h.doc_id for h in r.hits]
            ranks[fusion].append(ids.index(doc_id) + 1 if doc_id in ids else 99)
            searches[fusion] = r.plan.count(":") + r.plan.count("bm25")
    rows = []
    for fusion in fusions:
        recall = [sum(r <= k for r in ranks[fusion]) / len(queries) for k in (1, 5, 10)]
        rows.append(
            [
                f"{fusion} ({mode})",
                str(searches[fusion]),
                *(f"{x:.3f}" for x in recall),
                f"{pct(lat[fusion], 50):.2f}",
                f"{pct(lat[fusion], 95):.2f}",
            ]
        )
    return rows


def run_modalities(engine: Engine, questions: list[str], wavs: list[bytes]) -> list[list[str]]:
    photos = sorted(p for p in (DEMO / "media").iterdir() if p.suffix in (".jpg", ".png"))
    rows = []

    def measure(name: str, make, extra: str = "") -> None:  # type: ignore[no-untyped-def]
        totals, extras = [], []
        for i in range(len(questions)):
            r = engine.search(make(i), k=5)
            totals.append(r.timings_ms["total"] - r.timings_ms.get(extra, 0))
            extras.append(r.timings_ms.get(extra, 0))
        row = [name, f"{pct(totals, 50):.2f}", f"{pct(totals, 95):.2f}"]
        row.append(f"{statistics.median(extras):.0f}" if extra else "–")
        rows.append(row)

    measure("text", lambda i: Query(text=questions[i]))
    measure("photo (no OCR)", lambda i: _photo_query(photos[i % len(photos)], ocr=False))
    rows[-1][0] = "photo (no OCR of the query photo)"
    totals, ocr = [], []
    for i in range(min(10, len(questions))):
        r = engine.search(Query(image=photos[i % len(photos)].read_bytes()), k=5, ocr=True)
        totals.append(r.timings_ms["total"] - r.timings_ms.get("image_ocr", 0))
        ocr.append(r.timings_ms.get("image_ocr", 0))
    rows.append(
        [
            "photo with OCR (OCR time separate)",
            f"{pct(totals, 50):.2f}",
            f"{pct(totals, 95):.2f}",
            f"{statistics.median(ocr):.0f} (OCR)",
        ]
    )
    measure("voice (transcript memoised; ASR below)", lambda i: Query(audio=wavs[i]))
    return rows


def _photo_query(path: Path, ocr: bool) -> Query:
    return _OcrOff(image=path.read_bytes()) if not ocr else Query(image=path.read_bytes())


class _OcrOff(Query):
    """Marker so run_modalities passes ocr=False (engine.search takes it as an argument)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=80)
    args = parser.parse_args()
    t0 = time.perf_counter()
    db = build(args.items)
    print(f"collection {db} ready in {time.perf_counter() - t0:.0f}s")
    pairs = perlfaq()
    picked = random.Random(0).sample(range(len(pairs)), min(args.queries, len(pairs)))
    with Engine.open(db) as engine:
        engine.cache.enabled = False  # measure the uncached path
        original = engine.search

        def search(query, **kw):  # type: ignore[no-untyped-def]
            if isinstance(query, _OcrOff):
                kw["ocr"] = False
            return original(query, **kw)

        engine.search = search  # type: ignore[method-assign]
        memo: dict[bytes, tuple[str, dict[str, float]]] = {}
        media = engine.media
        real_query_audio = media.query_audio

        def query_audio(data: bytes):  # type: ignore[no-untyped-def]
            # ASR runs once per clip (timed into the memo); timed searches then get the
            # transcript for free, so their latency is retrieval only, for both fusion modes.
            key = hashlib.sha1(data).digest()
            if key not in memo:
                memo[key] = real_query_audio(data)
            return memo[key][0], {}

        media.query_audio = query_audio
        wavs = [speak(pairs[i][0]) for i in picked]
        for wav in wavs:
            query_audio(wav)  # ASR once, outside the timed runs
        for text, wav in [(pairs[i][0], w) for i, w in zip(picked[:5], wavs[:5], strict=True)]:
            for fusion in ("early", "late"):  # warm caches and code paths for both modes
                engine.search(Query(text=text, audio=wav), k=10, fusion=fusion)
        queries = [
            (hint(pairs[i][0]), wav, f"perlfaq-{i}.txt")
            for i, wav in zip(picked, wavs, strict=True)
        ]
        stats = engine.stats()
        n = sum(stats["items"].values())
        print(
            f"\n{n:,} items ({stats['items']}), {len(queries)} queries, "
            f"{os.cpu_count()} cores, backend {stats['config']['backend']}/"
            f"{stats['config']['quantization']}\n"
        )
        print("### early vs late fusion: typed hint + spoken question → perlfaq answer\n")
        print("| fusion | searches/query | R@1 | R@5 | R@10 | p50 ms | p95 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for mode in ("hybrid", "dense"):
            for row in run_fusion(engine, queries, mode):
                print("| " + " | ".join(row) + " |")
        asr = [memo[hashlib.sha1(w).digest()][1].get("transcribe", 0) for w in wavs]
        print(
            f"\n(ASR excluded above: Whisper tiny.en median {statistics.median(asr):.0f} ms "
            "per question, identical for both modes)\n"
        )
        print("### query latency by modality (hybrid, k=5, uncached)\n")
        print("| query | p50 ms | p95 ms | separate stage (median ms) |")
        print("|---|---:|---:|---:|")
        questions = [pairs[i][0] for i in picked]
        for row in run_modalities(engine, questions, wavs):
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
