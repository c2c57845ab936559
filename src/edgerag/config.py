"""Engine configuration: explicit, typed, persisted with the collection. No env reading here."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgerag.errors import ConfigError
from edgerag.index.base import IndexConfig
from edgerag.ingest.limits import Limits

ENCODERS = ("minilm", "minilm-q8", "hash")
MODES = ("hybrid", "dense", "bm25")
LEXICAL_ENGINES = ("tantivy", "fts5")  # EngineConfig.lexical; see edgerag.lexical


@dataclass(frozen=True)
class EngineConfig:
    """Everything that shapes a collection.

    Attributes:
        encoder: text encoder: "minilm" (all-MiniLM-L6-v2 int8 ONNX, the default),
            "minilm-q8" (the same model with integer matmuls: ~2.5–3× the chunk throughput
            and ~2× faster question encodes on two cores, cosine ≈ 0.995 to "minilm", hybrid
            R@1 −0.9 points on the dev sets at 100k; see docs/notes/ingest.md) or "hash"
            (deterministic feature hashing; tests and model-free demos).
        index: how each vector space is indexed.
        chunk_tokens / chunk_overlap: token windows for text.
        limits: input size limits.
        candidates: per-retriever candidates fused in hybrid mode.
        rrf_k: RRF constant.
        rank_fusion: how hybrid ranked lists are merged: "weighted" (convex fusion of normalised
            scores with the weights fitted on dev Q/A sets, the default) or "rrf".
        checkpoint_ops: persist the index after this many ops (the op log covers the rest).
        synchronous: SQLite synchronous mode ("FULL" survives power loss).
        ocr: read text in ingested images and video frames (tesseract; ~0.5 s per image).
        transcribe: transcribe ingested audio and video sound tracks (Whisper tiny.en).
        audio_window_s / audio_overlap_s: audio segment windows.
        video_fps: frames sampled per second of video.
        clip_model: directory of CLIP/SigLIP weights for the ``joint`` space (none ship offline).
        encrypt: encryption at rest (SQLCipher store, no index files on disk); the key is never
            part of the config (see :mod:`edgerag.crypto`).
        scrub_pii: redact PII (e-mails, phones, IBANs, cards, national ids, cued person names)
            from every ingest before it is embedded, indexed or stored (``privacy`` extra).
        pii_regions: countries whose national phone formats are recognised without ``+``.
        erase_rebuilds_index: a delete rebuilds the ANN graph (faiss, usearch) so that no
            quantized code of a deleted vector stays in the index files; off, a delete is
            cheap and those codes stay until the engine's own compaction (the float32
            originals file is compacted at every delete either way).
        joint_head: project images and video frames into the text space with the trained head
            shipped in the package (the ``imagetext`` space); ignored when ``clip_model`` is set
            or the text encoder is not MiniLM ("minilm" or "minilm-q8").
        caption_transfer: after each ingest, images and frames with no words of their own
            (no caption, nothing read) borrow the captions of their visually nearest captioned
            images in the collection (``edgerag.ingest.joint.transfer_captions``).
        unit_vectors: vectors of the answer units (sentences, rows) stored at ingest for the
            composer: "late" (pooled from the chunk's own forward pass, no extra encode),
            "separate" (each unit encoded on its own) or "off" (encoded at query time).
        lexical: the BM25 engine: "tantivy" (a per-process in-memory Tantivy index following
            the op log; ``tantivy`` extra) or "fts5" (SQLite FTS5 in the store, no extra, slower
            on long questions over large collections). See :mod:`edgerag.lexical`.
    """

    encoder: str = "minilm"
    index: IndexConfig = field(default_factory=IndexConfig)
    chunk_tokens: int = 200
    chunk_overlap: int = 50
    limits: Limits = field(default_factory=Limits)
    candidates: int = 50
    rrf_k: int = 60
    rank_fusion: str = "weighted"
    checkpoint_ops: int = 200
    synchronous: str = "FULL"
    ocr: bool = True
    transcribe: bool = True
    audio_window_s: float = 5.0
    audio_overlap_s: float = 1.0
    video_fps: float = 1.0
    clip_model: str | None = None
    encrypt: bool = False
    scrub_pii: bool = False
    pii_regions: tuple[str, ...] = ("US", "GB", "DE", "NL", "FR", "ES", "IT")
    erase_rebuilds_index: bool = True
    joint_head: bool = True
    caption_transfer: bool = True
    unit_vectors: str = "late"
    lexical: str = "tantivy"

    def __post_init__(self) -> None:
        object.__setattr__(self, "pii_regions", tuple(self.pii_regions))  # JSON gives a list
        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; choose one of {list(ENCODERS)}")
        if self.chunk_tokens <= 0 or not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError("need chunk_tokens > 0 and 0 <= chunk_overlap < chunk_tokens")
        if self.rank_fusion not in ("weighted", "rrf"):
            raise ConfigError(f"rank_fusion must be 'weighted' or 'rrf', got {self.rank_fusion!r}")
        if self.unit_vectors not in ("late", "separate", "off"):
            raise ConfigError(
                f"unit_vectors must be 'late', 'separate' or 'off', got {self.unit_vectors!r}"
            )
        if self.lexical not in LEXICAL_ENGINES:
            raise ConfigError(f"lexical must be 'tantivy' or 'fts5', got {self.lexical!r}")
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigError("synchronous must be OFF, NORMAL, FULL or EXTRA")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        data = _known_keys(cls, data, "")
        if isinstance(data.get("index"), dict):
            data["index"] = IndexConfig(**_known_keys(IndexConfig, data["index"], "index."))
        if isinstance(data.get("limits"), dict):
            data["limits"] = Limits(**_known_keys(Limits, data["limits"], "limits."))
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> EngineConfig:
        return cls.from_dict(json.loads(path.read_text()))


def _known_keys(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``data`` if every key is a field of ``cls``; else a ConfigError naming the strangers (a
    collection written by a newer edgerag says so instead of failing with a TypeError)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config keys {[prefix + k for k in unknown]}; valid: "
            f"{sorted(prefix + k for k in known)} (written by a newer edgerag?)"
        )
    return dict(data)
