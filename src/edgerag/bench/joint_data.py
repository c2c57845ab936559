"""Image–name sets for training and evaluating the joint image→text head.

Sources are Iconify JSON packages installed by ``scripts/joint_data.sh`` into a cache dir
outside the repo (emoji styles and icon sets, each with its own licence, see
``docs/DATA_CARD_joint.md``) plus scikit-image's sample photos. SVGs are rasterised with resvg
(PyPI ``resvg-py``) on white; nothing is copied into the repo.

Features (EfficientNet-Lite0 pooled features + top-5 ImageNet probabilities) are cached per set
in ``<cache>/joint-features/`` so training and the benchmark pay for the forward passes once.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerag._optional import require
from edgerag.encoders.visual import cache_dir

logger = logging.getLogger(__name__)

RENDER_SIDE = 224
# Skin-tone and gender variants repeat one picture with one extra word; keep the base emoji so
# a style does not count the same thing five times.
_VARIANT = re.compile(r"-(light|medium-light|medium|medium-dark|dark)-skin-tone|-tone\d")
# Split by SOURCE: evaluation never sees a set the head was trained on.
# Sized for a shared 2-core box (0.04-0.2 s per image by load); the seeded sample is cached.
TRAIN_SETS: dict[str, int | None] = {
    "noto": 700,
    "twemoji": 700,
    "openmoji": 700,
    "emojione": 500,
    "tabler": 700,
    "mdi": 700,
    "noto-v1": 1200,
    "fxemoji": None,
    "streamline-emojis": None,
    "iconoir": 1500,
    "ph": 1500,
    "carbon": 1500,
    "bi": 1500,
}
HELD_OUT_SETS = {"fluent-emoji-flat": 600, "lucide": 400, "skimage": None}


@dataclass
class ImageSet:
    """One source: images' cached features with their names."""

    name: str
    names: list[str]  # caption of each image ("red heart")
    features: np.ndarray  # (n, 1280) L2-normalised EfficientNet-Lite0 features
    top_idx: np.ndarray  # (n, 5) ImageNet class indices, most probable first
    top_p: np.ndarray  # (n, 5) their probabilities


def data_dir() -> Path:
    """Where ``scripts/joint_data.sh`` installed the npm packages."""
    env = os.environ.get("EDGERAG_JOINT_DATA")
    return Path(env) if env else cache_dir() / "joint-data"


def words(icon_name: str) -> str:
    """``"face-with-tears-of-joy"`` → ``"face with tears of joy"``."""
    return " ".join(w for w in re.split(r"[-_\s]+", icon_name) if w)


def iconify_svgs(set_name: str, limit: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """(caption, svg) pairs of an Iconify set, variants dropped, a seeded sample of ``limit``."""
    path = data_dir() / "node_modules" / "@iconify-json" / set_name / "icons.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run scripts/joint_data.sh")
    data = json.loads(path.read_text(encoding="utf-8"))
    width, height = data.get("width", 16), data.get("height", 16)
    pairs = []
    for key, icon in sorted(data["icons"].items()):
        if _VARIANT.search(key) or icon.get("hidden"):
            continue
        w, h = icon.get("width", width), icon.get("height", height)
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{icon.get("left", 0)} '
            f'{icon.get("top", 0)} {w} {h}">{icon["body"]}</svg>'
        )
        pairs.append((words(key), svg))
    if limit is not None and len(pairs) > limit:
        pick = np.random.default_rng(seed).choice(len(pairs), limit, replace=False)
        pairs = [pairs[i] for i in sorted(pick)]
    return pairs


def rasterise(svg: str, side: int = RENDER_SIDE) -> object:
    """SVG → RGB PIL image on white (icons use currentColor: it renders black)."""
    resvg = require("resvg_py")
    pil = require("PIL.Image")
    png = resvg.svg_to_bytes(svg_string=svg, width=side, height=side, background="#ffffff")
    return pil.open(io.BytesIO(bytes(png))).convert("RGB")


def skimage_photos() -> list[tuple[str, object]]:
    """scikit-image's sample photos with their names as captions (held out: real photos)."""
    data = require("skimage.data")
    pil = require("PIL.Image")
    names = {
        "astronaut": "astronaut",
        "camera": "cameraman with a camera",
        "cat": "cat",
        "chelsea": "cat",
        "coffee": "cup of coffee",
        "coins": "coins",
        "horse": "horse",
        "hubble_deep_field": "galaxies in space",
        "immunohistochemistry": "tissue under a microscope",
        "moon": "moon surface",
        "page": "page of text",
        "rocket": "rocket",
        "text": "text",
        "clock": "clock",
        "brick": "brick wall",
        "grass": "grass",
        "gravel": "gravel",
        "retina": "eye retina",
        "cell": "cell",
        "kidney": "kidney",
        "lily": "lily flower",
        "logo": "python logo",
        "colorwheel": "colour wheel",
    }
    out = []
    for fn, caption in names.items():
        loader = getattr(data, fn, None)
        if loader is None:
            continue
        try:
            arr = np.asarray(loader())
        except Exception as exc:  # some samples need pooch downloads: skipped offline
            logger.info("skimage.data.%s unavailable: %s", fn, exc)
            continue
        if arr.ndim == 3 and arr.shape[-1] not in (3, 4):  # 3-D volumes (kidney, cells3d)
            continue
        if arr.dtype != np.uint8:
            arr = arr.astype(np.float32)
            arr = (255 * (arr - arr.min()) / max(float(np.ptp(arr)), 1e-6)).astype(np.uint8)
        out.append((caption, pil.fromarray(arr).convert("RGB")))
    return out


def load_set(
    name: str, encoder: object, limit: int | None = None, seed: int = 0, cache: Path | None = None
) -> ImageSet:
    """Features of one source, computed once and cached on disk (in ``cache`` if given)."""
    cache = (cache or cache_dir() / "joint-features") / f"{name}-{limit}-{seed}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return ImageSet(name, list(z["names"]), z["features"], z["top_idx"], z["top_p"])
    if name == "skimage":
        pairs = skimage_photos()
        captions, images = [c for c, _ in pairs], [im for _, im in pairs]
    else:
        svgs = iconify_svgs(name, limit, seed)
        captions, images = [c for c, _ in svgs], [rasterise(s) for _, s in svgs]
    feats, probs = _encode(encoder, images)
    top_idx = np.argsort(-probs, axis=1)[:, :5]
    top_p = np.take_along_axis(probs, top_idx, axis=1)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        cache, names=np.array(captions), features=feats, top_idx=top_idx, top_p=top_p
    )
    return ImageSet(name, captions, feats, top_idx, top_p)


def _encode(encoder: object, images: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    feats, probs = [], []
    for start in range(0, len(images), 64):
        f, p = encoder.encode(list(images[start : start + 64]))  # type: ignore[attr-defined]
        feats.append(f)
        probs.append(p)
    return np.concatenate(feats).astype(np.float32), np.concatenate(probs).astype(np.float32)


def recall_at(sims: np.ndarray, truth: Sequence[set[int]], ks: Sequence[int] = (1, 5, 10)) -> dict:
    """R@k of a (queries × gallery) similarity matrix; ``truth[i]`` = relevant gallery rows."""
    order = np.argsort(-sims, axis=1)[:, : max(ks)]
    out = {}
    for k in ks:
        hits = [bool(set(order[i, :k].tolist()) & truth[i]) for i in range(len(truth))]
        out[f"R@{k}"] = round(float(np.mean(hits)), 3)
    return out


def retrieval_scores(image_vecs: np.ndarray, names: Sequence[str], text_vecs_by_name: dict) -> dict:
    """Text→image and image→text R@1/5/10 on one gallery; duplicate names count as one query.

    ``text_vecs_by_name`` maps each distinct name to its MiniLM vector.
    """
    uniq = list(dict.fromkeys(names))
    index = {n: i for i, n in enumerate(uniq)}
    t = np.stack([text_vecs_by_name[n] for n in uniq])
    image_rows: dict[str, set[int]] = {}
    for row, n in enumerate(names):
        image_rows.setdefault(n, set()).add(row)
    t2i = recall_at(t @ image_vecs.T, [image_rows[n] for n in uniq])
    i2t = recall_at(image_vecs @ t.T, [{index[n]} for n in names])
    return {"text→image": t2i, "image→text": i2t, "queries": len(uniq), "images": len(names)}


__all__ = [
    "HELD_OUT_SETS",
    "TRAIN_SETS",
    "ImageSet",
    "data_dir",
    "iconify_svgs",
    "load_set",
    "rasterise",
    "recall_at",
    "retrieval_scores",
    "skimage_photos",
    "words",
]
