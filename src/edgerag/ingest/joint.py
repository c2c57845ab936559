"""The ``imagetext`` space: images and video frames projected into the text space by the head.

Every image item gets one 384-d vector from :class:`~edgerag.encoders.joint.JointHead`; a query
phrase is its MiniLM vector, a query photo its head vector, and a photo + phrase the weighted sum
of both: ONE vector, ONE search in this space (early fusion across aligned modalities).

It is a space of its own, not mixed into ``text``: measured in ``benchmarks/joint_bench.py``,
text chunks that merely mention a word outrank every image in a shared index, and the space's
own encoder id/version lets a new head re-embed the image vectors alone, from what the store
already holds (visual features + top-5 labels), without decoding a single image again.

User-provided CLIP/SigLIP weights (``EngineConfig.clip_model``) outrank the head: with them the
``joint`` space is used and this one is not written.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag.store.ops import SpaceVectors
from edgerag.types import SpaceSpec

if TYPE_CHECKING:
    from edgerag.encoders.joint import JointHead
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)

IMAGETEXT_SPACE = "imagetext"
VISUAL_SPACE = "visual"


def head_space_vectors(
    head: JointHead, keys: np.ndarray, visual: np.ndarray, labels: list[Any]
) -> SpaceVectors:
    """The ``imagetext`` vectors of image items from their features and stored labels."""
    return SpaceVectors(head.id, head.version, keys, head.project_labels(visual, labels))


def reembed_images(engine: Engine, head: JointHead) -> int:
    """A new head version: re-project only the image items, from the store. Returns the count."""
    store = engine.store
    stored = store.spaces().get(IMAGETEXT_SPACE)
    if stored is None or (stored.encoder, stored.version) == (head.id, head.version):
        return 0
    stale = store.stale_keys(IMAGETEXT_SPACE, head.id, head.version)
    engine._open_space(SpaceSpec(IMAGETEXT_SPACE, head.id, head.version, head.dim))
    docs = {row["doc_id"] for row in store.items([int(k) for k in stale]).values()}
    logger.info("re-embedding %d image items with joint head %s", len(stale), head.version)
    for doc_id in sorted(docs):
        op = store.materialize(doc_id)
        visual = op.vectors.get(VISUAL_SPACE)
        if visual is None:
            continue
        rows = store.items([int(k) for k in visual.keys])
        labels = [rows[int(k)]["metadata"].get("labels", []) for k in visual.keys]
        op.vectors[IMAGETEXT_SPACE] = head_space_vectors(head, visual.keys, visual.vectors, labels)
        engine.apply(op)
    return len(stale)


__all__ = ["IMAGETEXT_SPACE", "head_space_vectors", "reembed_images"]
