"""The trained joint head: EfficientNet-Lite0 features → the 384-d MiniLM text space.

No CLIP/SigLIP weights are reachable offline, so edgerag ships a small head trained by
``scripts/train_joint_head.py`` on open emoji and icon sets (``docs/DATA_CARD_joint.md``). It is
a residual on a free prior, in the spirit of ConSE:

    prior = normalise(Σ_k p_k · MiniLM(name of ImageNet class k))   over the top-5 classes
    z     = normalise(prior + W·x + b [+ B·relu(A·x + a)])         x = 1280-d image features

so a photo of a class ImageNet knows starts near that class's words, and ``W`` (trained
contrastively on captioned clip-art) moves images the ImageNet labels describe badly towards the
words people use for them. Text needs no tower of its own: a phrase is its MiniLM vector, so a
phrase, a photo, or both (summed) are ONE vector searched in ONE index.

Runtime needs numpy only: the head is an ``.npz`` (float16 weights, < 5 MB) in the package. Its
``version`` is a digest of that file, so shipping a new head re-embeds image vectors only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgerag.encoders.base import normalize
from edgerag.errors import EncoderError

DATA_DIR = Path(__file__).parent / "data"
HEAD_FILE = DATA_DIR / "joint_head.npz"
METRICS_FILE = DATA_DIR / "joint_head_metrics.json"
PRIOR_K = 5  # ImageNet classes in the prior: what items keep in metadata["labels"]


class JointHead:
    """Maps image features (+ their top ImageNet classes) into the MiniLM text space.

    Args:
        path: A head ``.npz`` written by ``scripts/train_joint_head.py``.

    Attributes:
        id / version / dim: encoder identity for the space the vectors live in.
        class_names: ImageNet class display names (model output order).
    """

    id = "edgerag-joint-head"
    dim = 384

    def __init__(self, path: Path = HEAD_FILE) -> None:
        try:
            raw = Path(path).read_bytes()
            with np.load(path, allow_pickle=False) as z:
                self.weight = z["weight"].astype(np.float32)  # (1280, 384)
                self.bias = z["bias"].astype(np.float32)  # (384,)
                self.class_text = z["class_text"].astype(np.float32)  # (1000, 384)
                self.class_names = [str(n) for n in z["class_names"]]
                # optional one-hidden-layer branch: relu(x·A + a)·B, added to the linear one
                self.hidden = (
                    (
                        z["hidden_weight"].astype(np.float32),  # (1280, h)
                        z["hidden_bias"].astype(np.float32),  # (h,)
                        z["out_weight"].astype(np.float32),  # (h, 384)
                    )
                    if "hidden_weight" in z.files
                    else None
                )
        except (OSError, KeyError, ValueError) as exc:
            raise EncoderError(f"cannot load joint head {path}: {exc}") from exc
        self.version = hashlib.blake2b(raw, digest_size=6).hexdigest()
        self._by_name = {}
        for i, name in enumerate(self.class_names):
            self._by_name.setdefault(name, i)

    def project(self, features: np.ndarray, top_idx: np.ndarray, top_p: np.ndarray) -> np.ndarray:
        """(n, 1280) features + (n, k) top class indices/probabilities → (n, 384) unit rows."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.weight.shape[0]:
            raise EncoderError(
                f"joint head expects (n, {self.weight.shape[0]}) features, got {features.shape}"
            )
        prior = conse_prior(self.class_text, top_idx, top_p)
        # einsum, not `@`: a (1,1280)x(1280,384) product is too small for OpenBLAS's threads,
        # which on a busy 2-core box cost 5 ms of waiting (measured); einsum runs it in 0.1-0.7.
        z = prior + np.einsum("nd,dk->nk", features, self.weight) + self.bias
        if self.hidden is not None:
            a, a_bias, out = self.hidden
            h = np.maximum(np.einsum("nd,dh->nh", features, a) + a_bias, 0.0)
            z += np.einsum("nh,hk->nk", h, out)
        return normalize(z)

    def project_probs(self, features: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Like :meth:`project`, from full (n, 1000) class probabilities."""
        top_idx = np.argsort(-probs, axis=1)[:, :PRIOR_K]
        return self.project(features, top_idx, np.take_along_axis(probs, top_idx, axis=1))

    def project_labels(
        self, features: np.ndarray, labels: Sequence[Sequence[Sequence[Any]]]
    ) -> np.ndarray:
        """Like :meth:`project`, from items' stored ``metadata["labels"]`` ``[[name, p], …]``:
        what re-embedding uses (the visual vectors and labels are in the store already)."""
        n = len(labels)
        top_idx = np.zeros((n, PRIOR_K), dtype=np.int64)
        top_p = np.zeros((n, PRIOR_K), dtype=np.float32)
        for row, item_labels in enumerate(labels):
            for col, (name, p) in enumerate(list(item_labels)[:PRIOR_K]):
                if str(name) in self._by_name:
                    top_idx[row, col] = self._by_name[str(name)]
                    top_p[row, col] = float(p)
        return self.project(features, top_idx, top_p)


def conse_prior(class_text: np.ndarray, top_idx: np.ndarray, top_p: np.ndarray) -> np.ndarray:
    """Σ_k p_k · class_text[idx_k], normalised: the ImageNet guess written as a text vector."""
    mixed = np.einsum("nk,nkd->nd", np.asarray(top_p, np.float32), class_text[top_idx])
    return normalize(mixed)


def head_metrics(path: Path = METRICS_FILE) -> dict[str, Any]:
    """The shipped head's training/evaluation record (``joint_head_metrics.json``)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


_SHARED: JointHead | None = None


def shared_head() -> JointHead | None:
    """The packaged head, loaded once per process; ``None`` when the file is missing."""
    global _SHARED
    if _SHARED is None and HEAD_FILE.exists():
        _SHARED = JointHead(HEAD_FILE)
    return _SHARED


__all__ = ["HEAD_FILE", "METRICS_FILE", "PRIOR_K", "JointHead", "conse_prior", "shared_head"]
