"""Multimodal quality and ingest throughput (media half of issue 3). Prints Markdown tables.

1. text → image: recall@1/5/10 on a held-out split (~28 %, by CRC32 of the file name) of the
   Google emoji set (npm ``emoji-datasource-google``: 64 px PNGs, names from ``emoji.json``).
   Queries are the held-out names; the gallery is the held-out images, each embedded with
   MiniLM from the text rendered for it. Rows: the naive top-3 ImageNet labels; edgerag's label
   rendering (synonyms, WordNet hypernyms and glosses, colours); + OCR; + caption transfer from
   the disjoint, captioned dev split (``CaptionBank``).
2. spoken question → passage: perlfaq (Debian ``perl-doc``) questions spoken by espeak-ng,
   transcribed by Whisper tiny.en, searched with MiniLM over the answer bodies (question
   headings removed). The typed question is the upper bound.
3. ingest throughput on this box: images/s with and without OCR, audio real-time factor.

The emoji package is fetched with ``npm pack`` into ``~/.cache/edgerag/bench`` (never into the
repo) when missing. Run: ``.venv/bin/python benchmarks/multimodal_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgerag.bench.synthetic import sample_images
from edgerag.encoders.minilm import MiniLMEncoder
from edgerag.encoders.visual import EfficientNetLite0, cache_dir
from edgerag.ingest.extract.image import (
    CaptionBank,
    LabelStyle,
    colour_names,
    decode_image,
    render_image_text,
)
from edgerag.ingest.limits import Limits
from edgerag.ingest.media import MediaPipeline

EMOJI_PACKAGE = "emoji-datasource-google@16.0.0"
PERLFAQ = Path("/usr/share/perl/5.36/pod")
HELD_OUT_PERCENT = 28


# ---- helpers ---------------------------------------------------------------------------------
def recall_at(
    query_vecs: np.ndarray, gallery_vecs: np.ndarray, truth: Sequence[int]
) -> list[float]:
    """Recall@1/5/10 where query i's relevant gallery row is ``truth[i]``."""
    scores = query_vecs @ gallery_vecs.T
    target = scores[np.arange(len(truth)), truth]
    ranks = (scores > target[:, None]).sum(axis=1)
    return [float((ranks < k).mean()) for k in (1, 5, 10)]


def table(title: str, header: Sequence[str], rows: list[Sequence[object]]) -> str:
    out = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    out.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        cells = [f"{c:.3f}" if isinstance(c, float) else str(c) for c in row]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


# ---- 1. text → image on emoji ------------------------------------------------------------------
def emoji_dir() -> Path:
    root = cache_dir() / "bench" / "emoji"
    if not (root / "package" / "emoji.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "pack", EMOJI_PACKAGE, "--pack-destination", str(root)],
            check=True,
            capture_output=True,
        )
        tgz = next(root.glob("emoji-datasource-google-*.tgz"))
        with tarfile.open(tgz) as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.name == "package/emoji.json" or m.name.startswith("package/img/google/64/")
            ]
            tar.extractall(root, members=members, filter="data")
        tgz.unlink()
    return root / "package"


def load_emoji() -> tuple[list[dict], list[object]]:
    root = emoji_dir()
    entries = [e for e in json.loads((root / "emoji.json").read_text()) if e.get("has_img_google")]
    images = []
    for e in entries:
        data = (root / "img" / "google" / "64" / e["image"]).read_bytes()
        images.append(decode_image(e["image"], data, Limits()).image)
    return entries, images


def text_to_image(quick: bool, ocr: bool) -> str:
    entries, images = load_emoji()
    held = [
        i for i, e in enumerate(entries) if zlib.crc32(e["image"].encode()) % 100 < HELD_OUT_PERCENT
    ]
    dev = [i for i in range(len(entries)) if i not in set(held)]
    if quick:
        held = random.Random(0).sample(held, 150)
    visual = EfficientNetLite0()
    t0 = time.perf_counter()
    vectors, probs = visual.encode(images)
    print(f"encoded {len(images)} emoji in {time.perf_counter() - t0:.1f} s")
    top = visual.top_labels(probs, 10)
    colours = {i: colour_names(images[i]) for i in held}
    ocr_text: dict[int, str] = {}
    if ocr:
        from edgerag.encoders.ocr import TesseractOCR

        reader = TesseractOCR()
        ocr_text = {i: reader.read(images[i]) for i in held}
    bank = CaptionBank(vectors[dev], [entries[i]["name"].lower() for i in dev])
    style = LabelStyle()
    variants: dict[str, Callable[[int], str]] = {
        "naive: top-3 ImageNet labels": lambda i: ", ".join(c.name for c, _ in top[i][:3]),
        "labels + synonyms + hypernyms + glosses + colours": lambda i: render_image_text(
            labels=top[i], colours=colours[i], style=style
        ),
    }
    if ocr:
        variants["… + OCR (tesseract)"] = lambda i: render_image_text(
            labels=top[i], colours=colours[i], ocr_text=ocr_text[i], style=style
        )
    variants["… + caption transfer (3 nearest captioned dev images)"] = lambda i: render_image_text(
        labels=top[i],
        colours=colours[i],
        ocr_text=ocr_text.get(i, ""),
        similar=bank.describe(vectors[i]),
        style=style,
    )
    minilm = MiniLMEncoder()
    queries = minilm.encode([entries[i]["name"].lower() for i in held])
    rows = []
    for name, render in variants.items():
        gallery = minilm.encode([render(i) for i in held])
        rows.append([name, *recall_at(queries, gallery, list(range(len(held))))])
    rows.append(["random", 1 / len(held), 5 / len(held), 10 / len(held)])
    return table(
        f"text → image, Google emoji held-out split ({len(held)} images, {len(dev)} dev)",
        ["image text rendering", "R@1", "R@5", "R@10"],
        rows,
    )


# ---- 2. spoken question → passage ------------------------------------------------------------
def perlfaq() -> list[tuple[str, str]]:
    """(question, answer body) pairs from perlfaq1-9."""
    pairs = []
    for n in range(1, 10):
        pod = (PERLFAQ / f"perlfaq{n}.pod").read_text(encoding="utf-8", errors="replace")
        for block in re.split(r"^=head2 ", pod, flags=re.M)[1:]:
            question, _, body = block.partition("\n")
            body = re.sub(r"^=\w+.*$", "", body, flags=re.M)
            body = re.sub(r"[A-Z]<+([^<>]*)>+", r"\1", body)
            body = " ".join(body.split())
            if len(body) > 40:
                pairs.append((re.sub(r"[A-Z]<+([^<>]*)>+", r"\1", question).strip(), body))
    return pairs


def speak(text: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "q.wav", Path(tmp) / "q16.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(out)], check=True)
        return out.read_bytes()


def spoken_to_passage(pipeline: MediaPipeline, n: int) -> str:
    pairs = perlfaq()
    minilm = MiniLMEncoder()
    passages = minilm.encode([body for _, body in pairs])
    picked = random.Random(0).sample(range(len(pairs)), min(n, len(pairs)))
    transcripts, spent, audio_s = [], 0.0, 0.0
    for i in picked:
        wav = speak(pairs[i][0])
        audio_s += (len(wav) - 44) / 32000
        t0 = time.perf_counter()
        text, _ = pipeline.query_audio(wav)
        spent += time.perf_counter() - t0
        transcripts.append(text)
    typed = minilm.encode([pairs[i][0] for i in picked])
    spoken = minilm.encode(transcripts)
    rows = [
        ["typed question (upper bound)", *recall_at(typed, passages, picked)],
        ["spoken (espeak-ng → Whisper tiny.en)", *recall_at(spoken, passages, picked)],
        ["random", 1 / len(pairs), 5 / len(pairs), 10 / len(pairs)],
    ]
    note = (
        f"\nASR: {spent / max(audio_s, 1e-9):.2f}× real time over {audio_s:.0f} s of questions.\n"
    )
    return (
        table(
            f"spoken question → passage, perlfaq ({len(picked)} questions, {len(pairs)} answers)",
            ["query", "R@1", "R@5", "R@10"],
            rows,
        )
        + note
    )


# ---- 3. throughput --------------------------------------------------------------------------
def throughput(n_images: int) -> str:
    images = sample_images(n_images, name="img{i}.jpg")
    rows = []
    for ocr in (False, True):
        pipeline = MediaPipeline(ocr=ocr)
        pipeline.extract(*images[0])  # load models outside the timing
        t0 = time.perf_counter()
        for name, data in images:
            pipeline.extract(name, data)
        rate = len(images) / (time.perf_counter() - t0)
        rows.append(
            [
                f"images, OCR {'on' if ocr else 'off'} (JPEG: 1024×768 drawn, 300–640 px photos)",
                f"{rate:.1f} images/s",
            ]
        )
    pipeline = MediaPipeline(ocr=False)
    text = " ".join(q for q, _ in perlfaq()[:12])
    wav = speak(text)
    seconds = (len(wav) - 44) / 32000
    pipeline.extract("warm.wav", speak("warm up"))
    t0 = time.perf_counter()
    pipeline.extract("long.wav", wav)
    rtf = (time.perf_counter() - t0) / seconds
    rows.append(
        [
            f"audio, {seconds:.0f} s speech (decode + Whisper tiny.en + windows)",
            f"{rtf:.2f}× real time",
        ]
    )
    return table("ingest throughput (this box, 2 cores, sequential)", ["input", "rate"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples (smoke run)")
    parser.add_argument("--no-ocr", action="store_true", help="skip OCR of the emoji set")
    parser.add_argument("--questions", type=int, default=80)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--only", choices=["image", "speech", "throughput"])
    args = parser.parse_args()
    out = []
    if args.only in (None, "image"):
        out.append(text_to_image(args.quick, ocr=not args.no_ocr))
        print(out[-1], flush=True)
    if args.only in (None, "speech"):
        out.append(
            spoken_to_passage(MediaPipeline(ocr=False), 20 if args.quick else args.questions)
        )
        print(out[-1], flush=True)
    if args.only in (None, "throughput"):
        out.append(throughput(12 if args.quick else args.images))
        print(out[-1], flush=True)


if __name__ == "__main__":
    main()
