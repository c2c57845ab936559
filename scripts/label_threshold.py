"""Measure the probability an ImageNet label guess needs before it may be shown as text.

Labelled set: the real photos of scikit-image's ``skimage.data`` (DATA.md) whose names say what
they show, with the ImageNet lemmas that count as a correct guess; plus the demo's industrial
images (pump skid photos, a schematic, a P&ID: ImageNet has no class for what they show, so
every guess on them is wrong). For each image the top-1 label and its probability are taken; a
threshold shows a label when p >= t. The script prints precision and how many correct labels
survive per threshold; the smallest threshold with precision 1.0 on this set is the default.

    PYTHONPATH=src .venv/bin/python scripts/label_threshold.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# skimage.data name → words; a top-1 guess is correct when one of its lemmas contains one.
SKIMAGE = {
    "astronaut": ["astronaut", "space"],
    "chelsea": ["cat", "tabby"],
    "coffee": ["coffee", "espresso", "cup"],
    "rocket": ["rocket", "missile", "space shuttle", "projectile"],
    "horse": ["horse", "sorrel"],
    "eagle": ["eagle", "kite", "hawk"],
    "clock": ["clock"],
    "camera": ["camera", "tripod"],
    "coins": ["coin"],
    "lily": ["lily", "daisy", "flower"],
    "brick": ["brick", "wall"],
    "grass": ["grass", "hay"],
    "gravel": ["gravel", "stone"],
    "moon": ["moon"],
    "page": ["book", "page", "menu", "envelope"],
    "text": ["book", "page", "menu", "envelope", "scoreboard"],
    "logo": ["logo", "snake", "python"],
    "stereo_motorcycle": ["motorcycle", "moped", "scooter"],
}
DEMO = [
    "kx40-bearing-housing.png",
    "kx40-pid-overview.png",
    "kx40-seal-flush-plan11.png",
    "p2a-skid-photo.jpg",
    "p2b-strainer-basket-photo.jpg",
]


def images():
    import skimage.data
    from PIL import Image

    for name, words in SKIMAGE.items():
        try:
            array = getattr(skimage.data, name)()
        except Exception as exc:  # noqa: BLE001 (some need a download: skip them)
            print(f"skip {name}: {exc}")
            continue
        if isinstance(array, tuple):
            array = array[0]
        image = Image.fromarray(np.asarray(array)).convert("RGB")
        yield name, image, words
    for name in DEMO:
        yield name, Image.open(ROOT / "demo" / "media" / name).convert("RGB"), []


def main() -> None:
    from edgerag.ingest.media import MediaPipeline

    pipe = MediaPipeline(ocr=False)
    rows = []
    for name, image, words in images():
        _, probs = pipe.visual.encode([image])
        cls, p = pipe.visual.top_labels(probs, 1)[0][0]
        lemmas = ", ".join(cls.lemmas)
        ok = any(w in lemmas.lower() for w in words)
        rows.append((name, lemmas, float(p), ok))
        print(f"{name:28s} {p:.3f} {'OK ' if ok else 'bad'} {lemmas}")
    print("\n| threshold | labels shown | correct | precision | correct labels kept |")
    print("|---:|---:|---:|---:|---:|")
    total_ok = sum(ok for *_, ok in rows)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        shown = [ok for *_, p, ok in rows if p >= t]
        prec = sum(shown) / len(shown) if shown else float("nan")
        print(f"| {t:.1f} | {len(shown)} | {sum(shown)} | {prec:.2f} | {sum(shown)}/{total_ok} |")


if __name__ == "__main__":
    main()
