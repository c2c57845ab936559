"""OCR: text painted in images (schematic labels, nameplates, scanned pages).

Default: the Debian ``tesseract`` binary, called directly (one subprocess, PNG on stdin, TSV on
stdout). pytesseract does the same through temp files; calling the binary directly saves the
file round-trip and lets us read word confidences. Optional: RapidOCR (PP-OCRv4 ONNX, `pip
install rapidocr-onnxruntime`), better on photos of text but 4–10 s per image on 2 cores.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from typing import Any

from edgerag._optional import require
from edgerag.errors import EncoderError, MissingExtraError

logger = logging.getLogger(__name__)

# A word must have two letters/digits (or be a lone digit) to count: tesseract turns edges and
# textures of photos into streams of one-character junk, which this drops.
_WORD = re.compile(r"[A-Za-z0-9]")
MIN_CONFIDENCE = 55.0
# Tesseract wants text at least ~20 px tall; small images (icons, thumbnails) are upscaled.
MIN_SIDE = 600
MAX_SIDE = 3000


class OCR(ABC):
    """Reads the text in an image; returns lines joined by newlines ("" when none)."""

    id: str = ""

    @abstractmethod
    def read(self, image: Any) -> str:
        """Text of a PIL image."""


class TesseractOCR(OCR):
    """The ``tesseract`` CLI (Debian ``tesseract-ocr tesseract-ocr-eng``).

    Args:
        lang: Tesseract language(s), e.g. ``"eng"`` or ``"eng+deu"``.
        psm: Page segmentation mode. 11 (sparse text, any order) finds scattered labels on
            schematics and photos; 3 (automatic page) suits scanned pages with paragraphs.
        timeout_s: Per-image timeout.
        binary: Path of the executable; default: ``tesseract`` on ``$PATH``.
    """

    id = "tesseract"

    def __init__(
        self, lang: str = "eng", psm: int = 11, timeout_s: float = 60.0, binary: str | None = None
    ) -> None:
        found = binary or shutil.which("tesseract")
        if not found:
            raise EncoderError(
                "tesseract is not installed: `apt-get install tesseract-ocr tesseract-ocr-eng` "
                "(or pass ocr=False)"
            )
        self.binary = found
        self.lang = lang
        self.psm = psm
        self.timeout_s = timeout_s
        # One OpenMP thread per tesseract process: with 2 cores, ingest runs OCR beside the
        # image model, and tesseract's own threading only adds contention (its docs agree).
        self._env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def read(self, image: Any) -> str:
        png = _prepare_png(image)
        cmd = [self.binary, "stdin", "stdout", "-l", self.lang, "--psm", str(self.psm), "tsv"]
        try:
            proc = subprocess.run(
                cmd, input=png, capture_output=True, timeout=self.timeout_s, env=self._env
            )
        except subprocess.TimeoutExpired as exc:
            raise EncoderError(f"tesseract timed out after {self.timeout_s:.0f} s") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise EncoderError(f"tesseract failed: {err[-1] if err else proc.returncode}")
        return parse_tsv(proc.stdout.decode("utf-8", "replace"))


def parse_tsv(tsv: str, min_confidence: float = MIN_CONFIDENCE) -> str:
    """Tesseract TSV → confident words, one output line per (block, paragraph, line)."""
    lines: dict[tuple[str, str, str], list[str]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":  # level 5 = word
            continue
        word = cols[11].strip()
        try:
            conf = float(cols[10])
        except ValueError:
            continue
        if conf < min_confidence or not _is_word(word):
            continue
        lines.setdefault((cols[2], cols[3], cols[4]), []).append(word)
    return "\n".join(" ".join(words) for words in lines.values())


def _is_word(word: str) -> bool:
    alnum = len(_WORD.findall(word))
    return alnum >= 2 or (alnum == 1 and len(word) == 1 and word.isdigit())


def _prepare_png(image: Any) -> bytes:
    """Grayscale PNG, upscaled when small, downscaled when huge (tesseract time grows with area)."""
    from edgerag.encoders.visual import to_rgb

    pil = require("PIL.Image")
    gray = to_rgb(image).convert("L")
    side = max(gray.size)
    if side < MIN_SIDE:
        scale = MIN_SIDE / side
    elif side > MAX_SIDE:
        scale = MAX_SIDE / side
    else:
        scale = 1.0
    if scale != 1.0:
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        gray = gray.resize(size, pil.Resampling.LANCZOS)
    buf = io.BytesIO()
    gray.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class RapidOCR(OCR):
    """RapidOCR (PP-OCRv4 detection + recognition as ONNX, weights inside the wheel)."""

    id = "rapidocr"

    def __init__(self, min_score: float = 0.5) -> None:
        try:
            module = __import__("rapidocr_onnxruntime")
        except ImportError as exc:
            raise MissingExtraError(
                "rapidocr_onnxruntime", "media", "RapidOCR; also `pip install rapidocr-onnxruntime`"
            ) from exc
        self._engine = module.RapidOCR()
        self.min_score = min_score

    def read(self, image: Any) -> str:
        import numpy as np

        from edgerag.encoders.visual import to_rgb

        try:
            result, _ = self._engine(np.asarray(to_rgb(image)))
        except Exception as exc:
            raise EncoderError(f"RapidOCR failed: {exc}") from exc
        return "\n".join(text for _box, text, score in result or [] if score >= self.min_score)


def create_ocr(name: str = "tesseract", **options: Any) -> OCR:
    """``"tesseract"`` (default) or ``"rapidocr"``."""
    if name == "tesseract":
        return TesseractOCR(**options)
    if name == "rapidocr":
        return RapidOCR(**options)
    raise ValueError(f"unknown OCR engine {name!r}; choose 'tesseract' or 'rapidocr'")
