"""Images: safe decoding, embedded descriptions, thumbnails, and the text an image is searched by.

Decoding is defensive: the pixel count is read from the header and checked against
``Limits.max_pixels`` before any pixel is decoded (decompression bombs), every Pillow failure
becomes :class:`~edgerag.errors.InputError` naming the file, and the EXIF orientation is applied
so features and OCR see the picture upright.

The text rendered for an image (:func:`render_image_text`) is what puts it in the ``text``
space: caption / alt text / EXIF description, OCR text, ImageNet labels with their synonyms
and, for the confident ones, their WordNet gloss, dominant colours and filename words. That
text, not only the top-3 labels, is what lifts text→image recall (see
``benchmarks/multimodal_bench.py``).
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np

from edgerag._optional import require
from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest.extract.reasons import image_reason
from edgerag.ingest.limits import Limits

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 256
IMAGE_MIMES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "MPO": "image/jpeg",
}
# PNG tEXt/iTXt keys and EXIF tags that carry a human description of the picture.
_PNG_TEXT_KEYS = ("Title", "Description", "Caption", "Alt", "alt", "Comment", "Subject")
_EXIF_TEXT_TAGS = {270: "ImageDescription", 315: "Artist", 0x9C9B: "XPTitle", 0x9C9C: "XPComment"}
_EXIF_INFO_TAGS = {271: "Make", 272: "Model", 306: "DateTime"}
_XMP_FIELDS = re.compile(
    r"<(dc:description|dc:title|photoshop:Headline)[^>]*>(.*?)</\1>", re.DOTALL | re.IGNORECASE
)
_XML_TAG = re.compile(r"<[^>]+>")
# Camera and phone file-name prefixes that say nothing about the picture.
_FILENAME_NOISE = {"img", "dsc", "dscn", "dcim", "pxl", "image", "photo", "screenshot", "scan"}


@dataclass
class DecodedImage:
    """A decoded, upright RGB image and what its file says about it."""

    image: Any  # PIL.Image.Image, RGB
    format: str
    mime: str
    width: int
    height: int
    descriptions: list[str] = field(default_factory=list)  # caption, alt text, EXIF, XMP
    exif: dict[str, str] = field(default_factory=dict)
    frames: int = 1


def decode_image(source: str, data: bytes, limits: Limits) -> DecodedImage:
    """Decode image bytes safely.

    Raises:
        InputTooLargeError: The header declares more pixels than ``limits.max_pixels``.
        InputError: Empty, truncated, corrupt or not an image Pillow can read.
    """
    pil = require("PIL.Image")
    if not data:
        raise InputError(source, "empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pil.DecompressionBombWarning)
        try:
            im = pil.open(io.BytesIO(data))  # lazy: reads the header only
        except (pil.DecompressionBombError, pil.DecompressionBombWarning) as exc:
            raise _bomb(source, exc, limits) from exc
        except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError, ValueError …
            raise InputError(source, f"not a readable image ({_reason(exc)})") from exc
        check_pixels(source, im.size, limits)
        try:
            im.load()
            descriptions, exif = _embedded_text(im)
            frames = int(getattr(im, "n_frames", 1) or 1)
            upright = _upright(im)
        except (pil.DecompressionBombError, pil.DecompressionBombWarning) as exc:
            raise _bomb(source, exc, limits) from exc
        except Exception as exc:  # truncated data surfaces here, at decode time
            raise InputError(source, f"corrupt image ({_reason(exc)})") from exc
    from edgerag.encoders.visual import to_rgb

    fmt = im.format or "unknown"
    return DecodedImage(
        image=to_rgb(upright),
        format=fmt,
        mime=IMAGE_MIMES.get(fmt, f"image/{fmt.lower()}"),
        width=upright.width,
        height=upright.height,
        descriptions=descriptions,
        exif=exif,
        frames=frames,
    )


def check_pixels(source: str, size: tuple[int, int], limits: Limits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise InputError(source, f"image has no pixels ({width}×{height})")
    if width * height > limits.max_pixels:
        raise InputTooLargeError(
            source,
            f"image is {width:,}×{height:,} = {width * height:,} pixels, over the "
            f"{limits.max_pixels:,} limit (Limits.max_pixels; decompression bomb?)",
        )


def _bomb(source: str, exc: Exception, limits: Limits) -> InputTooLargeError:
    """Pillow's own bomb guard fired first (its limit sits above ours for huge headers)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return InputTooLargeError(
        source,
        f"image header declares {declared}, over the {limits.max_pixels:,} limit "
        "(Limits.max_pixels; decompression bomb?)",
    )


def _reason(exc: Exception) -> str:
    return image_reason(exc)


def _upright(im: Any) -> Any:
    ops = require("PIL.ImageOps")
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame stands for the file
    return ops.exif_transpose(im) or im


def _embedded_text(im: Any) -> tuple[list[str], dict[str, str]]:
    """Descriptions from PNG text chunks, EXIF and XMP; plus a few EXIF facts for metadata."""
    found: list[str] = []
    info = getattr(im, "text", None) or {}
    found += [str(info[k]) for k in _PNG_TEXT_KEYS if info.get(k)]
    exif: dict[str, str] = {}
    raw = im.getexif()
    for tag, name in {**_EXIF_TEXT_TAGS, **_EXIF_INFO_TAGS}.items():
        value = raw.get(tag)
        if value is None:
            continue
        text = _exif_str(value)
        if text:
            exif[name] = text
            if tag in _EXIF_TEXT_TAGS and tag != 315:
                found.append(text)
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp:
        found += _xmp_text(xmp)
    unique = list(dict.fromkeys(t.strip() for t in found if t and t.strip()))
    return unique, exif


def _exif_str(value: Any) -> str:
    if isinstance(value, bytes):
        # XP* tags are UTF-16LE byte strings; others are ASCII.
        for codec in ("utf-16-le", "utf-8", "latin-1"):
            try:
                return value.decode(codec).strip("\x00 \n")
            except UnicodeDecodeError:
                continue
        return ""
    return str(value).strip("\x00 \n")


def _xmp_text(xmp: bytes | str) -> list[str]:
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
    out = []
    for _tag, body in _XMP_FIELDS.findall(text):
        value = " ".join(_XML_TAG.sub(" ", body).split())
        if value and value.lower() != "x-default":
            out.append(value)
    return out


def make_thumbnail(image: Any, side: int = THUMBNAIL_SIDE, quality: int = 80) -> bytes:
    """A small JPEG (longest side ≤ ``side``) to store with the item and show in results."""
    pil = require("PIL.Image")
    thumb = image.copy()
    thumb.thumbnail((side, side), pil.Resampling.BILINEAR)
    buf = io.BytesIO()
    thumb.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def filename_words(source: str) -> str:
    """``"KX40_pump-skid overview.v2.png"`` → ``"KX40 pump skid overview v2"`` (noise dropped)."""
    stem = PurePath(source).stem
    stem = re.sub(r"([a-z])([A-Z])", r"\1 \2", stem)
    words = [w for w in re.split(r"[\s_.\-+()\[\],]+", stem) if w]
    keep = [
        w
        for w in words
        if re.search(r"[A-Za-z]", w) and w.lower() not in _FILENAME_NOISE and not _is_hash(w)
    ]
    return " ".join(keep)


def _is_hash(word: str) -> bool:
    return len(word) >= 12 and bool(re.fullmatch(r"[0-9a-fA-F]+", word))


# ---- colours ---------------------------------------------------------------------------------
# Basic colour terms; hue ranges in degrees. Named because clip-art and product photos are
# often described by colour ("red heart", "blue valve handle").
_HUES = (
    (15, "red"),
    (40, "orange"),
    (68, "yellow"),
    (160, "green"),
    (250, "blue"),
    (290, "purple"),
    (335, "pink"),
    (360, "red"),
)


def colour_names(image: Any, min_share: float = 0.15, max_colours: int = 3) -> list[str]:
    """Dominant colour words of an image, ignoring the (white) background.

    Pixels are classed by HSV into basic colour terms; a colour is named when it covers at least
    ``min_share`` of the non-background pixels.
    """
    small = np.asarray(image.convert("RGB").resize((48, 48)), dtype=np.float32) / 255.0
    px = small.reshape(-1, 3)
    mx, mn = px.max(axis=1), px.min(axis=1)
    foreground = ~((mn > 0.94) & (mx - mn < 0.05))  # near-white = background
    if foreground.sum() < 0.05 * len(px):
        return []
    names = _classify(px[foreground], mx[foreground], mn[foreground])
    values, counts = np.unique(names, return_counts=True)
    share = counts / counts.sum()
    order = np.argsort(-share)
    return [str(values[i]) for i in order[:max_colours] if share[i] >= min_share]


def _classify(px: np.ndarray, mx: np.ndarray, mn: np.ndarray) -> np.ndarray:
    chroma = mx - mn
    sat = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0)
    hue = _hue(px, mx, chroma)
    limits = np.array([limit for limit, _ in _HUES])
    names = np.array([name for _, name in _HUES])[
        np.clip(np.searchsorted(limits, hue, "right"), 0, len(_HUES) - 1)
    ]
    names = np.where((hue >= 15) & (hue < 45) & (mx < 0.6), "brown", names)
    names = np.where(sat < 0.18, np.where(mx > 0.85, "white", "gray"), names)
    out: np.ndarray = np.where(mx < 0.2, "black", names)
    return out


def _hue(px: np.ndarray, mx: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    c = np.maximum(chroma, 1e-6)
    h = np.where(mx == r, ((g - b) / c) % 6, np.where(mx == g, (b - r) / c + 2, (r - g) / c + 4))
    out: np.ndarray = h * 60.0
    return out


# ---- the text an image is searched by --------------------------------------------------------
@dataclass(frozen=True)
class LabelStyle:
    """How recognised ImageNet labels are written into an image's text.

    Attributes:
        k: Labels considered (most probable first).
        min_prob: Labels below this probability are left out (the top one is always kept).
        synonyms: Write each label's WordNet synonyms, not just its first name.
        glosses: Write the WordNet definition of the labels at or above ``gloss_prob``.
        gloss_prob: Probability a label needs for its gloss to be written.
        hypernyms: Write the broader WordNet terms of each label ("tabby" → "domestic cat,
            cat"), when WordNet is installed.
        colours: Name the dominant colours.
    """

    # Defaults are lean on purpose: on the emoji benchmark the richer renderings (glosses,
    # hypernyms, more labels) scored no better than three labels, and on industrial photos a
    # wrong label's gloss ("iPod … a pocket-sized device used to play music") is pure noise.
    k: int = 3
    min_prob: float = 0.1
    synonyms: bool = True
    glosses: bool = False
    gloss_prob: float = 0.15
    hypernyms: bool = False
    colours: bool = True


DEFAULT_LABEL_STYLE = LabelStyle()


def labels_text(
    labels: Sequence[tuple[Any, float]], style: LabelStyle = DEFAULT_LABEL_STYLE
) -> str:
    """``[(ImageNetClass, p), ...]`` → e.g. ``"tabby, tabby cat (a cat with a grey coat); …"``."""
    parts: list[str] = []
    for rank, (cls, prob) in enumerate(labels[: style.k]):
        if rank and prob < style.min_prob:
            break
        names = cls.lemmas if style.synonyms else cls.lemmas[:1]
        part = ", ".join(names)
        if style.hypernyms and getattr(cls, "hypernyms", ()):
            part += ", " + ", ".join(cls.hypernyms)
        # Glosses only for confident labels: a wrong label's gloss ("a computer connected to
        # the internet …" on a schematic) pulls the text far from what the image shows.
        if style.glosses and cls.definition and prob >= style.gloss_prob:
            part += f" ({cls.definition})"
        parts.append(part)
    return "; ".join(parts)


class CaptionBank:
    """Captions of reference images, looked up by visual similarity (caption transfer).

    An image with no caption of its own borrows the captions of the most similar captioned
    images (EfficientNet-Lite0 cosine): a new photo of a pump skid next to captioned photos of
    pump skids gets their words. Feed it images whose captions you trust (e.g. the captioned
    images of the same collection); it never sees the image being described.
    """

    def __init__(self, vectors: np.ndarray | None = None, captions: Sequence[str] = ()) -> None:
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.captions: list[str] = []
        if vectors is not None and len(captions):
            self.add(vectors, captions)

    def __len__(self) -> int:
        return len(self.captions)

    def add(self, vectors: np.ndarray, captions: Sequence[str]) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors) != len(captions):
            raise ValueError(f"{len(vectors)} vectors but {len(captions)} captions")
        self.vectors = vectors if not len(self) else np.vstack([self.vectors, vectors])
        self.captions += list(captions)

    def describe(self, vector: np.ndarray, k: int = 3, min_sim: float = 0.3) -> list[str]:
        """Captions of the ``k`` most similar reference images with cosine ≥ ``min_sim``."""
        if not len(self):
            return []
        sims = self.vectors @ np.asarray(vector, dtype=np.float32)
        top = np.argsort(-sims)[:k]
        return [self.captions[i] for i in top if sims[i] >= min_sim]


def render_image_text(
    *,
    descriptions: Sequence[str] = (),
    ocr_text: str = "",
    labels: Sequence[tuple[Any, float]] = (),
    colours: Sequence[str] = (),
    filename: str = "",
    similar: Sequence[str] = (),
    style: LabelStyle = DEFAULT_LABEL_STYLE,
) -> str:
    """The text an image (or video frame) is embedded and BM25-indexed by.

    Human text first (captions, painted text), then what the model recognised: MiniLM weighs
    every token equally in its mean pooling, so the most trustworthy parts should not be drowned
    by long label lists; glosses are only written for confident labels.
    """
    lines = [d.strip() for d in descriptions if d.strip()]
    ocr = " ".join(ocr_text.split())
    if ocr:
        lines.append(ocr)
    if similar:
        lines.append("; ".join(similar))
    if labels:
        lines.append(labels_text(labels, style))
    if colours and style.colours:
        lines.append(" ".join(colours))
    if filename:
        lines.append(filename)
    return "\n".join(lines)


__all__ = [
    "DEFAULT_LABEL_STYLE",
    "CaptionBank",
    "DecodedImage",
    "LabelStyle",
    "check_pixels",
    "colour_names",
    "decode_image",
    "filename_words",
    "labels_text",
    "make_thumbnail",
    "render_image_text",
]
