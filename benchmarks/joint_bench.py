#!/usr/bin/env python
"""Held-out evaluation of the joint image→text head, plus its latency.

    scripts/joint_data.sh && python benchmarks/joint_bench.py [--latency-queries 30]
    python benchmarks/joint_bench.py --latency [--rounds 60] [--db demo-data]   # demo collection
    python benchmarks/joint_bench.py --photo-weights      # answer.PHOTO_WEIGHT sweep on the demo
    python benchmarks/joint_bench.py --engine-transfer 200  # caption transfer through the engine

Evaluated only on SOURCES the head never saw (``HELD_OUT_SETS``: one emoji style, one icon set,
scikit-image's photos). Each held-out set is split in two, seeded: one half plays the user's
captioned collection (the caption bank), the other half is the gallery of uncaptioned images
searched by name (text→image) and named (image→text among the gallery's names).

Rows: ``labels`` = today's text for an image (ImageNet label words, MiniLM); ``prior`` = the
head's ConSE prior alone; ``transfer`` = captions of the 3 visually nearest bank images; ``head``
= the trained head; ``head+transfer`` = their sum. Then: the head's vectors in the text space
itself (sharing an index with 2,000 WordNet glosses as text chunks) versus a separate aligned
space; the IMAGE_MIN_SIM gate; ms per image for the head; photo query p95 without OCR.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgerag.bench.joint_data import HELD_OUT_SETS, TRAIN_SETS, ImageSet, load_set, recall_at
from edgerag.bench.stats import percentile as pct
from edgerag.encoders.base import normalize
from edgerag.encoders.joint import JointHead, conse_prior
from edgerag.ingest.extract.image import CaptionBank, labels_text

WORDNET = Path("/usr/share/wordnet/data.noun")


def split(data: ImageSet, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(data.names))
    half = len(order) // 2
    return np.sort(order[:half]), np.sort(order[half:])


def scores(img: np.ndarray, names: list[str], vec_of: dict) -> dict:
    uniq = list(dict.fromkeys(names))
    t = np.stack([vec_of[n] for n in uniq])
    rows: dict[str, set[int]] = {}
    for r, n in enumerate(names):
        rows.setdefault(n, set()).add(r)
    pos = {n: i for i, n in enumerate(uniq)}
    return {
        "t2i": recall_at(t @ img.T, [rows[n] for n in uniq]),
        "i2t": recall_at(img @ t.T, [{pos[n]} for n in names]),
    }


def evaluate_set(data, head, text, classes, seed) -> tuple[dict, np.ndarray, list[str]]:
    bank_rows, rows = split(data, seed)
    names = [data.names[i] for i in rows]
    vec_of = dict(zip(sorted(set(names)), text.encode(sorted(set(names))), strict=True))
    feats, idx, p = data.features[rows], data.top_idx[rows], data.top_p[rows]
    label_texts = [
        labels_text([(classes[i], float(q)) for i, q in zip(ii, pp, strict=True)])
        for ii, pp in zip(idx, p, strict=True)
    ]
    bank = CaptionBank(data.features[bank_rows], [data.names[i] for i in bank_rows])
    transfer_texts = ["; ".join(bank.describe(f)) for f in feats]
    transfer = _encode_or_zero(text, transfer_texts)
    head_vecs = head.project(feats, idx, p)
    methods = {
        "labels": _encode_or_zero(text, label_texts),
        "prior": conse_prior(head.class_text, idx, p),
        "transfer": transfer,
        "head": head_vecs,
        "head+transfer": normalize(head_vecs + transfer),
    }
    out = {m: scores(v, names, vec_of) for m, v in methods.items()}
    out["_n"] = {"gallery": len(rows), "bank": len(bank_rows), "names": len(vec_of)}
    return out, head_vecs, names


def _encode_or_zero(text, texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 384), np.float32)
    nonempty = [i for i, t in enumerate(texts) if t.strip()]
    if nonempty:
        out[nonempty] = text.encode([texts[i] for i in nonempty])
    return out


def wordnet_glosses(n: int, seed: int) -> list[str]:
    lines = [
        ln for ln in WORDNET.read_text(errors="replace").splitlines() if not ln.startswith(" ")
    ]
    picked = random.Random(seed).sample(lines, n)
    return [ln.split(" | ", 1)[1].strip() for ln in picked if " | " in ln]


def shared_vs_separate(head_vecs, names, text, glosses) -> dict:
    """Text→image R@5 with the images alone (separate space) and sharing the text space with
    gloss chunks (an image only counts if it is in the top 5 of the mixed ranking)."""
    uniq = list(dict.fromkeys(names))
    q = text.encode(uniq)
    g = text.encode(glosses)
    truth = [{r for r, n in enumerate(names) if n == u} for u in uniq]
    separate = recall_at(q @ head_vecs.T, truth, (5,))["R@5"]
    mixed = np.concatenate([head_vecs, g])  # images first: rows < len(names)
    shared = recall_at(q @ mixed.T, truth, (5,))["R@5"]
    top5 = np.argsort(-(q @ mixed.T), axis=1)[:, :5]
    return {
        "separate R@5": separate,
        "shared R@5": shared,
        "images in shared top-5": round(float((top5 < len(names)).mean()), 3),
    }


def gate(head_vecs, names, text, off_topic: list[str]) -> list[dict]:
    """For IMAGE_MIN_SIM: how often a name's own image clears the floor, and how often an
    off-topic text query's best image does."""
    uniq = list(dict.fromkeys(names))
    own = [
        max(float(head_vecs[r] @ v) for r, n in enumerate(names) if n == u)
        for u, v in zip(uniq, text.encode(uniq), strict=True)
    ]
    best_off = (text.encode(off_topic) @ head_vecs.T).max(axis=1)
    return [
        {
            "floor": f,
            "own image kept": round(float(np.mean(np.array(own) >= f)), 3),
            "off-topic query shows an image": round(float(np.mean(best_off >= f)), 3),
        }
        for f in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
    ]


def latency(head: JointHead, queries: int) -> dict:
    """ms per image for the head; p95 of a photo query end to end without OCR."""
    import io

    from edgerag import Engine, Query
    from edgerag.bench.joint_data import iconify_svgs, rasterise
    from edgerag.config import EngineConfig

    x = np.random.default_rng(0).standard_normal((1, 1280)).astype(np.float32)
    probs = np.full((1, 1000), 1e-3, np.float32)
    for _ in range(20):
        head.project_probs(x, probs)
    t0 = time.perf_counter()
    for _ in range(200):
        head.project_probs(x, probs)
    per_image = (time.perf_counter() - t0) / 200 * 1000
    images = []
    for name, svg in iconify_svgs("lucide", 12, seed=7):
        buf = io.BytesIO()
        rasterise(svg).save(buf, format="PNG")
        images.append((name, buf.getvalue()))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = EngineConfig(ocr=False, transcribe=False)
        with Engine.open(Path(tmp) / "c", cfg) as engine:
            for name, data in images[:8]:
                path = Path(tmp) / f"{name.replace(' ', '_')}.png"
                path.write_bytes(data)
                engine.ingest([path])
            probe = Path(tmp) / "probe.png"
            times, cnn, head_ms = [], [], []
            for i in range(queries):
                probe.write_bytes(images[8 + i % 4][1])
                t0 = time.perf_counter()
                # a fresh phrase each time: the result cache must not answer
                r = engine.search(Query(image=probe, text=f"icon {i}"), k=5, ocr=False)
                times.append((time.perf_counter() - t0) * 1000)
                cnn.append(r.timings_ms.get("image_visual", 0.0))
                head_ms.append(r.timings_ms.get("head", 0.0))
    times.sort()
    return {
        "head ms/image": round(per_image, 3),
        "head ms in query p50": round(statistics.median(head_ms), 2),
        "EfficientNet ms in query p50": round(statistics.median(cnn), 1),
        "photo query minus EfficientNet p95 ms": round(
            pct([t - c for t, c in zip(times, cnn, strict=True)], 95), 1
        ),
        "photo query p50 ms": round(statistics.median(times), 1),
        "photo query p95 ms": round(pct(times, 95), 1),
        "queries": queries,
    }


DEMO = Path(__file__).resolve().parents[1] / "demo"
DEMO_PHOTOS = [
    "queries/battery-photo.png",
    "media/p2b-strainer-basket-photo.jpg",
    "media/p2a-skid-photo.jpg",
    "media/kx40-bearing-housing.png",
]


def _pct(values: list[float], q: float) -> float:
    return round(pct(values, q), 2)


def demo_latency(rounds: int, db: Path | None = None) -> dict:
    """On the demo collection (``--latency``): the head's cost per image at ingest (the
    projection ingest runs, timed on the collection's own images one at a time, as one image
    document is one op) and photo queries without OCR, uncached, with a text query timed in
    the same run as the load reference. Photos: ``DEMO_PHOTOS`` in turn."""
    from edgerag import Engine, Query
    from edgerag.config import EngineConfig
    from edgerag.ingest.joint import VISUAL_SPACE

    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "demo"
        cfg = EngineConfig(ocr=False, transcribe=False)  # ingest speed only: queries skip OCR
        with Engine.open(path, cfg) as engine:
            if db is None:
                engine.ingest([DEMO / "corpus", DEMO / "media"])
            engine.cache.enabled = False  # every query runs the whole path
            head = engine.joint_head
            keys = engine.store.filter_keys({"modality": "image"})
            present, feats = engine.store.vectors(VISUAL_SPACE, keys)
            rows = engine.store.items([int(k) for k in present])
            labels = [rows[int(k)]["metadata"].get("labels", []) for k in present]
            ingest_ms = []
            for _ in range(max(1, 200 // max(1, len(present)))):
                for i in range(len(present)):
                    t0 = time.perf_counter()
                    head.project_labels(feats[i : i + 1], labels[i : i + 1])
                    ingest_ms.append((time.perf_counter() - t0) * 1000)
            photos = [(DEMO / p).read_bytes() for p in DEMO_PHOTOS]
            engine.search(Query(image=photos[0]), k=5, ocr=False)  # warm-up: models load
            engine.search("E-120 battery low", k=5)
            total, cnn, head_ms, text_ms = [], [], [], []
            for i in range(rounds):
                t0 = time.perf_counter()
                r = engine.search(Query(image=photos[i % len(photos)]), k=5, ocr=False)
                total.append((time.perf_counter() - t0) * 1000)
                cnn.append(r.timings_ms.get("image_visual", 0.0))
                head_ms.append(r.timings_ms.get("head", 0.0))
                t0 = time.perf_counter()
                engine.search(f"what does alarm E-1{i % 20:02d} mean", k=5)
                text_ms.append((time.perf_counter() - t0) * 1000)
            rest = [t - c for t, c in zip(total, cnn, strict=True)]
    return {
        "images in collection": int(len(present)),
        "head ms/image at ingest p50 / p95": (_pct(ingest_ms, 50), _pct(ingest_ms, 95)),
        "photo query (no OCR) p50 / p95 ms": (_pct(total, 50), _pct(total, 95)),
        "  EfficientNet-Lite0 in it p50 / p95 ms": (_pct(cnn, 50), _pct(cnn, 95)),
        "  head in it p50 / p95 ms": (_pct(head_ms, 50), _pct(head_ms, 95)),
        "  everything else p50 / p95 ms": (_pct(rest, 50), _pct(rest, 95)),
        "text query (same run) p50 / p95 ms": (_pct(text_ms, 50), _pct(text_ms, 95)),
        "photo p95 / text p95": round(_pct(total, 95) / max(_pct(text_ms, 95), 1e-9), 2),
        "queries": rounds,
    }


def engine_transfer(set_name: str, limit: int, seed: int) -> dict:
    """Caption transfer through the engine, no manual step (``--engine-transfer``): half of a
    held-out set is ingested with its names as PNG captions, the other half with no words at
    all (neutral file names, OCR off), in one ingest call; the gallery half is then scored
    from what the engine stored, with ``caption_transfer`` off and on: its ``text`` vectors
    (label words; + borrowed captions) and its ``imagetext`` vectors (head; head + transfer)."""
    import hashlib
    import io

    from PIL.PngImagePlugin import PngInfo

    from edgerag import Engine
    from edgerag.bench.joint_data import iconify_svgs, rasterise, retrieval_scores
    from edgerag.config import EngineConfig

    pairs = iconify_svgs(set_name, limit, seed=seed)
    order = np.random.default_rng(seed).permutation(len(pairs))
    bank_rows, gallery_rows = set(order[: len(order) // 2].tolist()), order[len(order) // 2 :]
    out: dict = {"set": set_name, "bank": len(bank_rows), "gallery": len(gallery_rows)}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, (name, svg) in enumerate(pairs):
            info = PngInfo()
            if i in bank_rows:
                info.add_text("Description", name)
            buf = io.BytesIO()
            rasterise(svg).save(buf, format="PNG", pnginfo=info)
            path = Path(tmp) / f"{hashlib.sha1(f'{seed}:{i}'.encode()).hexdigest()[:16]}.png"
            path.write_bytes(buf.getvalue())
            files.append(path)
        names = [pairs[i][0] for i in gallery_rows]
        for transfer in (False, True):
            cfg = EngineConfig(ocr=False, transcribe=False, caption_transfer=transfer)
            with Engine.open(Path(tmp) / f"c{int(transfer)}", cfg) as engine:
                t0 = time.perf_counter()
                engine.ingest(files)
                took = time.perf_counter() - t0
                keys = np.array(
                    [engine.store.doc_keys(str(files[i].resolve()))[0] for i in gallery_rows]
                )
                uniq = sorted(set(names))
                vec_of = dict(zip(uniq, engine.encoder.encode(uniq), strict=True))
                for space in ("text", "imagetext"):
                    vecs = engine.store.vectors(space, keys)[1]
                    label = {
                        ("text", False): "text space: label words",
                        ("text", True): "text space: labels + borrowed captions (transfer)",
                        ("imagetext", False): "imagetext: head",
                        ("imagetext", True): "imagetext: head + transfer",
                    }[space, transfer]
                    out[label] = retrieval_scores(vecs, names, vec_of)
                out[f"ingest s (transfer {'on' if transfer else 'off'})"] = round(took, 1)
    return out


PHOTO_QUESTION = "what should I do about this?"


def _hit(row: dict) -> object:
    from edgerag.types import Hit

    return Hit(
        row["key"], row["item_id"], row["doc_id"], row["source"], "text", 0.0, row["text"],
        metadata=row["metadata"],
    )  # fmt: skip


BATTERY_UNITS = {  # unit text prefix → column label
    "Symptom: E-120": "E-120 battery low row",
    "Code E-120": "Code E-120 row",
    "Part number KX40-BAT": "KX40-BAT-3V part row",
    "Task: Replace controller battery": "battery task row",
}


def photo_weights(db: Path | None, weights: tuple[float, ...] = (0, 0.5, 1, 1.5, 2, 3)) -> dict:
    """``--photo-weights``: for the demo's battery photo + ``PHOTO_QUESTION``, the rank of each
    battery unit among all units of the demo's text documents when units are scored against
    ``answer.photo_query_vector`` with each head weight (0 = the words alone); then the best
    unit cosine at weight ``PHOTO_WEIGHT`` for scikit-image photos that the corpus does not
    cover (what a support threshold would have to separate)."""
    import io

    import skimage.data
    from PIL import Image

    from edgerag import Engine, Query
    from edgerag.answer import PHOTO_WEIGHT, photo_query_vector
    from edgerag.config import EngineConfig
    from edgerag.generation.units import units
    from edgerag.retrieval.query import encode_query

    def png(array: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(array).convert("RGB").save(buf, format="PNG")
        return buf.getvalue()

    out: dict = {"ranks": {}, "best cosine at PHOTO_WEIGHT": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "demo"
        with Engine.open(path, EngineConfig(ocr=False, transcribe=False)) as engine:
            if db is None:
                engine.ingest([DEMO / "corpus"])
            keys = engine.store.filter_keys({"modality": "text"})
            rows = engine.store.items([int(k) for k in keys])
            texts = list(dict.fromkeys(u.text for r in rows.values() for u in units(_hit(r))))
            vecs = np.asarray(engine.encoder.encode(texts), np.float32)
            targets = {
                label: next(i for i, t in enumerate(texts) if t.startswith(prefix))
                for prefix, label in BATTERY_UNITS.items()
            }
            out["units"] = len(texts)

            def head_of(data: bytes) -> np.ndarray:
                vec = encode_query(engine, Query(image=data), ocr=False).photo_vector
                assert vec is not None, "no joint head"
                return vec

            battery = head_of((DEMO / "queries" / "battery-photo.png").read_bytes())
            for w in weights:
                cos = vecs @ photo_query_vector(engine, PHOTO_QUESTION, battery, w)
                rank = (-cos).argsort().argsort()
                out["ranks"][w] = {lab: int(rank[i]) + 1 for lab, i in targets.items()}
            photos = {"battery (demo)": battery}
            for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "horse"):
                photos[name] = head_of(png(getattr(skimage.data, name)()))
            for name, vec in photos.items():
                cos = vecs @ photo_query_vector(engine, PHOTO_QUESTION, vec, PHOTO_WEIGHT)
                out["best cosine at PHOTO_WEIGHT"][name] = round(float(cos.max()), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--text-compute",
        choices=("f32", "int8"),
        default="f32",
        help="MiniLM compute of the text side (int8: the minilm-q8 encoder's vectors)",
    )
    ap.add_argument("--latency-queries", type=int, default=30)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument(
        "--latency",
        action="store_true",
        help="only the demo collection's latency: head ms/image at ingest, photo query p95",
    )
    ap.add_argument("--rounds", type=int, default=60, help="photo queries for --latency")
    ap.add_argument("--db", type=Path, default=None, help="an existing demo collection")
    ap.add_argument(
        "--engine-transfer",
        type=int,
        default=0,
        metavar="N",
        help="only caption transfer through the engine on N held-out Fluent emoji",
    )
    ap.add_argument(
        "--photo-weights",
        action="store_true",
        help="only the composer's photo weight sweep on the demo (answer.PHOTO_WEIGHT)",
    )
    args = ap.parse_args(argv)
    if args.photo_weights:
        print(json.dumps(photo_weights(args.db), indent=1))
        return 0
    if args.engine_transfer:
        result = engine_transfer("fluent-emoji-flat", args.engine_transfer, args.seed)
        print(json.dumps(result, indent=1))
        return 0
    if args.latency:
        import os

        load = os.getloadavg()
        result = demo_latency(args.rounds, args.db)
        print(f"demo latency (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start):")
        for key, value in result.items():
            print(f"  {key}: {value}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    if args.latency_only:
        print("latency:", latency(JointHead(), args.latency_queries))
        return 0

    from edgerag.encoders.minilm import MiniLMEncoder
    from edgerag.encoders.visual import EfficientNetLite0

    visual, head = EfficientNetLite0(), JointHead()
    text = MiniLMEncoder(compute=args.text_compute)
    trained = {n for name, k in TRAIN_SETS.items() for n in load_set(name, visual, k).names}
    report: dict = {"head_version": head.version, "sets": {}}
    clipart_vecs, clipart_names = [], []
    for name, limit in HELD_OUT_SETS.items():
        data = load_set(name, visual, limit)
        res, vecs, names = evaluate_set(data, head, text, visual.classes, args.seed)
        res["_n"]["names also in training sets"] = round(
            float(np.mean([n in trained for n in set(names)])), 3
        )
        report["sets"][name] = res
        if name != "skimage":
            clipart_vecs.append(vecs)
            clipart_names += names
    glosses = wordnet_glosses(2000, args.seed)
    vecs = np.concatenate(clipart_vecs)
    report["space"] = shared_vs_separate(vecs, clipart_names, text, glosses)
    report["gate"] = gate(vecs, clipart_names, text, wordnet_glosses(300, args.seed + 1))
    if args.latency_queries:
        report["latency"] = latency(head, args.latency_queries)
    print_tables(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return 0


def print_tables(report: dict) -> None:
    print(f"joint head {report['head_version']}: held-out sources only\n")
    print("| set | method | t→i R@1 | R@5 | R@10 | i→t R@1 | R@5 | R@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, res in report["sets"].items():
        for method, r in res.items():
            if method.startswith("_"):
                continue
            t, i = r["t2i"], r["i2t"]
            print(
                f"| {name} | {method} | {t['R@1']:.3f} | {t['R@5']:.3f} | {t['R@10']:.3f} | "
                f"{i['R@1']:.3f} | {i['R@5']:.3f} | {i['R@10']:.3f} |"
            )
    for name, res in report["sets"].items():
        print(f"- {name}: {res['_n']}")
    print("\nspace (clip-art held-out, text→image):", report["space"])
    print("\nIMAGE_MIN_SIM gate (text-only queries):")
    for row in report["gate"]:
        print("  ", row)
    if "latency" in report:
        print("\nlatency:", report["latency"])


if __name__ == "__main__":
    sys.exit(main())
