"""CLIP / SigLIP joint text-image space from weights on disk (ONNX text + image towers).

No CLIP-class weights ship in any package reachable offline, so nothing here is a default: a
user points ``ClipEncoder`` at a directory, or asks :func:`download_clip` to fetch one from the
Hugging Face hub when it is reachable. Retrieval quality depends entirely on those weights; the
test suite only checks the plumbing with a tiny randomly initialised model.

Directory layout (what ``optimum-cli export onnx`` / clip-as-service exports look like)::

    textual.onnx | text_model.onnx      input_ids [n, L] int64 (+ attention_mask)  → [n, d]
    visual.onnx  | vision_model.onnx    pixel_values [n, 3, H, W] float32          → [n, d]
    tokenizer.json                      Hugging Face tokenizers file (CLIP BPE, SigLIP SP, …)
    preprocessor_config.json | config.json   optional: image_mean, image_std, crop_size/size,
                                        context_length / max_position_embeddings, resize_mode

When a tower has several outputs, the one named ``text_embeds`` / ``image_embeds`` /
``embeddings`` is used, else the first 2-D output.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgerag._optional import require
from edgerag.encoders.base import normalize
from edgerag.encoders.onnx_session import session_options
from edgerag.errors import ConfigError, EncoderError, MissingExtraError
from edgerag.types import Vectors

logger = logging.getLogger(__name__)

TEXT_NAMES = ("textual.onnx", "text_model.onnx", "text.onnx")
IMAGE_NAMES = ("visual.onnx", "vision_model.onnx", "image.onnx")
CONFIG_NAMES = ("preprocessor_config.json", "config.json", "clip_config.json")
EMBED_OUTPUTS = ("text_embeds", "image_embeds", "embeddings", "embeds")
# OpenAI CLIP's normalisation; SigLIP configs override it with 0.5/0.5.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _find(directory: Path, names: Sequence[str], what: str) -> Path:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise ConfigError(
        f"{directory}: no {what} found (looked for {', '.join(names)}); see the layout in "
        "edgerag.encoders.clip"
    )


def _read_config(directory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in reversed(CONFIG_NAMES):  # preprocessor_config.json wins
        path = directory / name
        if path.is_file():
            try:
                merged.update(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    return merged


def _size(config: dict[str, Any]) -> int:
    for key in ("crop_size", "size", "image_size"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("height") or value.get("shortest_edge")
        if isinstance(value, int) and value > 0:
            return value
    return 224


class ClipEncoder:
    """Encodes texts and images into one joint space (L2-normalised rows).

    Args:
        path: Directory with the two ONNX towers, ``tokenizer.json`` and an optional config.
        threads: onnxruntime intra-op threads.
        batch_size: Inputs per forward pass.

    Raises:
        ConfigError: The directory or a required file is missing, or the config is invalid.
        EncoderError: An ONNX file does not load or the towers disagree on the dimension.
    """

    def __init__(self, path: str | Path, threads: int = 2, batch_size: int = 16) -> None:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise ConfigError(f"{directory}: CLIP model directory does not exist")
        self.path = directory
        self.config = _read_config(directory)
        self._text = self._session(_find(directory, TEXT_NAMES, "text tower"), threads)
        self._image = self._session(_find(directory, IMAGE_NAMES, "image tower"), threads)
        self._tokenizer = self._load_tokenizer(directory)
        self.image_size = _size(self.config)
        self.mean = np.array(self.config.get("image_mean", CLIP_MEAN), dtype=np.float32)
        self.std = np.array(self.config.get("image_std", CLIP_STD), dtype=np.float32)
        self.batch_size = batch_size
        self.dim = self._probe_dim()
        self.id = f"clip-onnx:{directory.name}"
        self.version = str(self.config.get("version", "1"))

    # loading -----------------------------------------------------------------------------
    @staticmethod
    def _session(path: Path, threads: int) -> Any:
        ort = require("onnxruntime")
        options = session_options(threads)
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise EncoderError(f"{path}: not a loadable ONNX model ({exc})") from exc

    def _load_tokenizer(self, directory: Path) -> Any:
        tokenizers = require("tokenizers")
        path = _find(directory, ("tokenizer.json",), "tokenizer.json")
        try:
            tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:
            raise ConfigError(f"{path}: not a tokenizers file ({exc})") from exc
        self.context_length = int(
            self.config.get("context_length")
            or self.config.get("max_position_embeddings")
            or self._fixed_text_length()
            or 77
        )
        pad_id = int(self.config.get("pad_token_id", tok.token_to_id("<pad>") or 0))
        # CLIP towers were trained on fixed-length, padded inputs; pad every batch to the full
        # context so exported graphs with a static sequence axis accept it.
        tok.enable_padding(pad_id=pad_id, length=self.context_length)
        tok.enable_truncation(self.context_length)
        return tok

    def _fixed_text_length(self) -> int | None:
        shape = self._text.get_inputs()[0].shape
        return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None

    def _probe_dim(self) -> int:
        text_dim = self.encode_text(["a"]).shape[1]
        image_dim = self._image_dim()
        if image_dim is not None and image_dim != text_dim:
            raise EncoderError(
                f"{self.path}: text tower gives {text_dim}-d vectors, image tower {image_dim}-d"
            )
        return int(text_dim)

    def _image_dim(self) -> int | None:
        output = self._pick_output(self._image)
        shape = output.shape
        return shape[-1] if isinstance(shape[-1], int) else None

    @staticmethod
    def _pick_output(session: Any) -> Any:
        outputs = session.get_outputs()
        for out in outputs:
            if out.name in EMBED_OUTPUTS:
                return out
        for out in outputs:
            if len(out.shape) == 2:
                return out
        return outputs[0]

    # encoding ----------------------------------------------------------------------------
    def encode_text(self, texts: Sequence[str]) -> Vectors:
        """(n, dim) L2-normalised text embeddings."""
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        names = {i.name for i in self._text.get_inputs()}
        output = self._pick_output(self._text).name
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            enc = self._tokenizer.encode_batch(list(texts[start : start + self.batch_size]))
            feeds = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64)}
            if "attention_mask" in names:
                feeds["attention_mask"] = np.array([e.attention_mask for e in enc], np.int64)
            chunks.append(self._run(self._text, output, feeds))
        return normalize(np.concatenate(chunks))

    def encode_images(self, images: Sequence[Any]) -> Vectors:
        """(n, dim) L2-normalised image embeddings of PIL images."""
        if not images:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        input_name = self._image.get_inputs()[0].name
        output = self._pick_output(self._image).name
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = self._preprocess(images[start : start + self.batch_size])
            chunks.append(self._run(self._image, output, {input_name: pixels}))
        return normalize(np.concatenate(chunks))

    def _preprocess(self, images: Sequence[Any]) -> np.ndarray:
        """Resize the short side, centre-crop, scale to [0, 1], normalise: CLIP's recipe."""
        pil = require("PIL.Image")
        from edgerag.encoders.visual import to_rgb

        n = self.image_size
        out = np.empty((len(images), 3, n, n), dtype=np.float32)
        for row, image in enumerate(images):
            rgb = to_rgb(image)
            scale = n / min(rgb.size)
            size = (max(n, round(rgb.width * scale)), max(n, round(rgb.height * scale)))
            rgb = rgb.resize(size, pil.Resampling.BICUBIC)
            left, top = (rgb.width - n) // 2, (rgb.height - n) // 2
            rgb = rgb.crop((left, top, left + n, top + n))
            pixels = np.asarray(rgb, dtype=np.float32) / 255.0
            out[row] = ((pixels - self.mean) / self.std).transpose(2, 0, 1)
        return out

    def _run(self, session: Any, output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        try:
            result: np.ndarray = session.run([output], feeds)[0]
        except Exception as exc:
            raise EncoderError(f"{self.path}: CLIP forward pass failed ({exc})") from exc
        return result.reshape(result.shape[0], -1)


def download_clip(repo_id: str, target: str | Path, allow_download: bool = False) -> Path:
    """Fetch an ONNX CLIP/SigLIP export from the Hugging Face hub into ``target``.

    Only runs when ``allow_download`` is true (edgerag never downloads on its own) and the hub
    is reachable; otherwise raises with a message saying what to do instead.

    Raises:
        ConfigError: ``allow_download`` is false.
        MissingExtraError: ``huggingface_hub`` is not installed.
        EncoderError: The hub is unreachable or the repository has no usable files.
    """
    if not allow_download:
        raise ConfigError(
            f"not downloading {repo_id}: pass allow_download=True, or put the ONNX towers and "
            f"tokenizer.json into {target} yourself"
        )
    try:
        hub = __import__("huggingface_hub")
    except ImportError as exc:
        raise MissingExtraError("huggingface_hub", "media", "downloading CLIP weights") from exc
    patterns = [*TEXT_NAMES, *IMAGE_NAMES, *CONFIG_NAMES, "tokenizer.json", "*/*.onnx"]
    try:
        path = hub.snapshot_download(repo_id, local_dir=os.fspath(target), allow_patterns=patterns)
    except Exception as exc:  # offline, 404, auth …
        raise EncoderError(f"cannot download {repo_id} from the hub: {exc}") from exc
    return Path(path)
