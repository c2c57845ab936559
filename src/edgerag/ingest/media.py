"""Images, audio and video → :class:`MediaDocument` with timed, searchable items.

```
bytes ─► MediaPipeline.extract() ─► MediaDocument(items=[MediaItem, ...])
          image: decode → EfficientNet-Lite0 (features + labels) → OCR → text + thumbnail
          audio: decode 16 kHz → Whisper (word times) → 5 s windows, 1 s overlap
          video: frames at 1 fps, de-duplicated → image path; audio track → audio path
```

Every item carries ``text`` for the ``text`` space (what is read, recognised or heard), an RGB
``image`` and its ``visual`` features for the ``visual`` space (images and frames), and its time
range (audio windows, frames). Models load lazily, once per pipeline, on first use. Bad input
raises :class:`~edgerag.errors.InputError` naming the file and the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest.extract.audio import (
    AUDIO_MIMES,
    DecodedAudio,
    check_not_silent,
    decode_audio,
    window_words,
)
from edgerag.ingest.extract.image import (
    DEFAULT_LABEL_STYLE,
    CaptionBank,
    DecodedImage,
    LabelStyle,
    colour_names,
    decode_image,
    filename_words,
    make_thumbnail,
    render_image_text,
)
from edgerag.ingest.extract.video import DEDUP_THRESHOLD, VIDEO_MIMES, Frame, sample_frames
from edgerag.ingest.limits import Limits, human_bytes
from edgerag.types import Modality

logger = logging.getLogger(__name__)

MEDIA_SUFFIXES: dict[str, Modality] = {
    **dict.fromkeys(
        (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"), Modality.IMAGE
    ),
    **dict.fromkeys((".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a"), Modality.AUDIO),
    **dict.fromkeys((".mp4", ".m4v", ".webm", ".mkv", ".mov"), Modality.VIDEO),
}
LABELS_IN_METADATA = 5
# ImageNet guesses are written into an item's text (what is shown, quoted and embedded) only at
# this top-1 probability or above: on the labelled set of scripts/label_threshold.py (skimage
# photos with known names + the demo's industrial images) it is the smallest threshold with no
# wrong label shown (3 of 3 correct; 0.5 would show 3 right and 3 wrong: "crossword puzzle" on a
# drawing). Below it, labels stay in metadata["labels"] and help a query photo find neighbours.
LABEL_TEXT_MIN_PROB = 0.7


@dataclass
class MediaItem:
    """One searchable piece of a media file.

    Attributes:
        position: Index within the document (stable; part of the item id).
        modality: ``IMAGE`` for images and video frames, ``AUDIO`` for audio windows
            (a video's audio track too).
        text: What is read, recognised or heard, rendered for the ``text`` space.
        image: RGB PIL image for the visual/joint spaces (images and frames), else ``None``.
        thumbnail: Small JPEG (≤ 256 px side) to store with the item.
        t_start: Seconds from the start (audio windows, video frames).
        t_end: End of the time range in seconds.
        metadata: ``ocr_text``, ``labels`` ``[[name, p], ...]``, ``caption``, ``exif``,
            ``colours``, ``transcript``, ``words`` ``[[word, start, end], ...]``,
            ``frame_index``.
        visual: The item's L2-normalised EfficientNet-Lite0 features (1280,), computed in the
            same forward pass as the labels; ``None`` for audio. (Extension of the agreed API:
            saves the engine a second forward pass; ``MediaPipeline.visual_vectors`` gives the
            same vectors.)
    """

    position: int
    modality: Modality
    text: str
    image: Any | None
    thumbnail: bytes | None
    t_start: float | None = None
    t_end: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    visual: np.ndarray | None = None


@dataclass
class MediaDocument:
    """A media file's items plus facts about the file (size, duration, codec, …)."""

    source: str
    modality: Modality
    mime: str
    title: str | None
    metadata: dict[str, Any]
    items: list[MediaItem]


def media_modality(source: str, data: bytes = b"") -> Modality | None:
    """The modality of ``source`` by suffix, or by content sniffing when the suffix is unknown."""
    suffix = PurePath(source).suffix.lower()
    if suffix in MEDIA_SUFFIXES:
        return MEDIA_SUFFIXES[suffix]
    return sniff_modality(data) if data else None


def sniff_modality(data: bytes) -> Modality | None:
    """Guess the modality from magic bytes (files without a suffix, e.g. uploads)."""
    head = data[:16]
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")):
        return Modality.IMAGE
    if head[:4] == b"RIFF":
        return {b"WEBP": Modality.IMAGE, b"WAVE": Modality.AUDIO}.get(head[8:12])
    if head.startswith((b"ID3", b"fLaC", b"OggS")) or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return Modality.AUDIO
    if head[4:8] == b"ftyp":
        return Modality.AUDIO if head[8:12] in (b"M4A ", b"M4B ") else Modality.VIDEO
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Modality.VIDEO
    return None


# Query photos whose forward pass is kept, by the identity of their (immutable) bytes: a wordless
# photo question searches twice with the same bytes (the fused search, then the photo with the
# typed words) and EfficientNet-Lite0 is ~10 ms of each.
SEEN_PHOTOS = 2


@dataclass
class _SeenPhoto:
    data: bytes  # held so its id cannot be reused while the entry lives
    descriptions: list[str]
    vector: np.ndarray  # read-only: shared by every query that sees these bytes
    probs: np.ndarray
    ocr_text: str | None = None  # None: not read yet

    def __post_init__(self) -> None:
        self.vector = self.vector.copy()
        self.probs = self.probs.copy()
        self.vector.setflags(write=False)
        self.probs.setflags(write=False)


class MediaPipeline:
    """Holds the media models (loaded lazily, once) and turns media bytes into documents.

    Args:
        limits: Size/duration/pixel limits.
        ocr: Run OCR on images.
        labels: Write ImageNet labels into image text.
        transcribe: Transcribe audio (without it audio items carry no text).
        audio_window_s: Audio window length.
        audio_overlap_s: Overlap between consecutive windows.
        video_fps: Frames sampled per second of video.
        frame_dedup_threshold: Mean grey-level difference (0–1) under which a frame is merged
            into the previous one.
        video_ocr: Run OCR on kept video frames (slow: ~0.3–0.6 s per frame).
        ocr_engine: ``"tesseract"`` or ``"rapidocr"``.
        label_style: How labels are written into the text (see ``LabelStyle``).
        visual_onnx: An exported EfficientNet-Lite0 ONNX to use instead of the cached export.
        whisper_model: A CTranslate2 Whisper directory instead of the bundled tiny.en.
        threads: Threads for the image model and Whisper.
        caption_bank: Captioned reference images; an image borrows the captions of its most
            visually similar references into its text (off when ``None``).
    """

    visual_encoder_id = "efficientnet-lite0"
    visual_encoder_version = "1"
    visual_dim = 1280

    def __init__(
        self,
        limits: Limits | None = None,
        ocr: bool = True,
        labels: bool = True,
        transcribe: bool = True,
        audio_window_s: float = 5.0,
        audio_overlap_s: float = 1.0,
        video_fps: float = 1.0,
        frame_dedup_threshold: float = DEDUP_THRESHOLD,
        *,
        video_ocr: bool = True,
        ocr_engine: str = "tesseract",
        label_style: LabelStyle = DEFAULT_LABEL_STYLE,
        visual_onnx: Path | None = None,
        whisper_model: Path | None = None,
        threads: int = 2,
        caption_bank: CaptionBank | None = None,
    ) -> None:
        if audio_window_s <= 0 or not 0 <= audio_overlap_s < audio_window_s:
            raise ValueError("need audio_window_s > 0 and 0 <= audio_overlap_s < audio_window_s")
        if video_fps <= 0:
            raise ValueError(f"video_fps must be > 0, got {video_fps}")
        self.limits = limits or Limits()
        self.ocr, self.labels, self.transcribe = ocr, labels, transcribe
        self.audio_window_s, self.audio_overlap_s = audio_window_s, audio_overlap_s
        self.video_fps, self.frame_dedup_threshold = video_fps, frame_dedup_threshold
        self.video_ocr, self.ocr_engine_name = video_ocr, ocr_engine
        self.label_style = label_style
        self.caption_bank = caption_bank
        self._visual_onnx, self._whisper_model, self._threads = visual_onnx, whisper_model, threads
        self._lock = threading.Lock()
        self._whisper_lock = threading.Lock()
        self._visual: Any = None
        self._ocr: Any = None
        self._whisper: Any = None
        self._seen_photos: OrderedDict[int, _SeenPhoto] = OrderedDict()
        self._seen_lock = threading.Lock()  # not _lock: that one is held while models load

    # lazily loaded models ----------------------------------------------------------------
    @property
    def visual(self) -> Any:
        """The EfficientNet-Lite0 encoder (exported to ONNX on first ever use)."""
        if self._visual is None:
            with self._lock:
                if self._visual is None:
                    from edgerag.encoders.visual import EfficientNetLite0

                    self._visual = EfficientNetLite0(self._visual_onnx, threads=self._threads)
        return self._visual

    @property
    def ocr_engine(self) -> Any:
        if self._ocr is None:
            with self._lock:
                if self._ocr is None:
                    from edgerag.encoders.ocr import create_ocr

                    self._ocr = create_ocr(self.ocr_engine_name)
        return self._ocr

    @property
    def transcriber(self) -> Any:
        if self._whisper is None:
            with self._lock:
                if self._whisper is None:
                    from edgerag.encoders.speech import WhisperTranscriber

                    self._whisper = WhisperTranscriber(
                        self._whisper_model, cpu_threads=self._threads
                    )
        return self._whisper

    # public API ------------------------------------------------------------------------
    def extract(self, source: str, data: bytes) -> MediaDocument:
        """Turn one media file into a document of items.

        Raises:
            InputTooLargeError: Over a limit (bytes, pixels, duration, frames).
            InputError: Empty, corrupt, truncated, unsupported, silent or speechless input.
        """
        self._check_bytes(source, data)
        modality = media_modality(source, data)
        if modality is Modality.IMAGE:
            return self._image_document(source, data)
        if modality is Modality.AUDIO:
            return self._audio_document(source, data)
        if modality is Modality.VIDEO:
            return self._video_document(source, data)
        suffix = PurePath(source).suffix.lower() or "no suffix"
        raise InputError(
            source,
            f"unsupported media type ({suffix}); supported: {', '.join(sorted(MEDIA_SUFFIXES))}",
        )

    def extract_images(
        self, inputs: Sequence[tuple[str, bytes]]
    ) -> list[MediaDocument | InputError]:
        """Several image files at once, each result as :meth:`extract` would give it (or the
        ``InputError`` it would raise): the images are decoded one by one, then go through the
        visual model in ONE batched forward pass instead of one pass per image."""
        decoded: list[DecodedImage | InputError] = []
        for source, data in inputs:
            try:
                self._check_bytes(source, data)
                decoded.append(decode_image(source, data, self.limits))
            except InputError as exc:
                decoded.append(exc)
        good = [d.image for d in decoded if not isinstance(d, InputError)]
        vectors, probs = self.visual.encode(good)
        out: list[MediaDocument | InputError] = []
        row = 0
        for (source, data), dec in zip(inputs, decoded, strict=True):
            if isinstance(dec, InputError):
                out.append(dec)
                continue
            encoded = (vectors[row : row + 1], probs[row : row + 1])
            row += 1
            try:
                out.append(self._image_document(source, data, dec, encoded))
            except InputError as exc:
                out.append(exc)
        return out

    def _check_bytes(self, source: str, data: bytes) -> None:
        if len(data) > self.limits.max_file_bytes:
            raise InputTooLargeError(
                source,
                f"file is {human_bytes(len(data))}, over the "
                f"{human_bytes(self.limits.max_file_bytes)} limit (Limits.max_file_bytes)",
            )
        if not data:
            raise InputError(source, "empty file (0 bytes)")

    def visual_vectors(self, images: list[Any]) -> np.ndarray:
        """(n, 1280) L2-normalised EfficientNet-Lite0 features of PIL images, batched."""
        features: np.ndarray = self.visual.features(images)
        return features

    def query_image(
        self, data: bytes, ocr: bool = True
    ) -> tuple[str, np.ndarray, dict[str, float]]:
        """A query photo → (text rendered like an item's, visual vector, timings in ms)."""
        text, _, vector, timings = self.query_image_parts(data, ocr)
        return text, vector, timings

    def query_image_parts(
        self, data: bytes, ocr: bool = True
    ) -> tuple[str, str, np.ndarray, dict[str, float]]:
        """Like :meth:`query_image`, plus the words literally *read* in the photo (caption, alt
        text, OCR) apart from what was only recognised (labels, colours): an answerer should
        quote questions from the former, never from a guessed label."""
        text, read, vector, _, timings = self.query_image_probs(data, ocr)
        return text, read, vector, timings

    def query_image_probs(
        self, data: bytes, ocr: bool = True, describe: bool = True
    ) -> tuple[str, str, np.ndarray, np.ndarray, dict[str, float]]:
        """Like :meth:`query_image_parts`, plus the ImageNet class probabilities (1000,) the
        joint head needs, from the same forward pass. ``describe=False``: the first element is
        only what was read (no label or colour words; the joint head's caller writes its own,
        and colour naming cost ~24 ms a query on the loaded 2-core box)."""
        timings: dict[str, float] = {}
        seen = self._seen_photo(data)
        colours = describe and self.label_style.colours
        decoded = None
        if seen is None or (ocr and seen.ocr_text is None) or colours:
            t0 = time.perf_counter()
            decoded = decode_image("query image", data, self.limits)
            timings["decode"] = _ms(t0)
        if seen is None:
            assert decoded is not None
            t0 = time.perf_counter()
            vectors, probs = self.visual.encode([decoded.image])
            timings["visual"] = _ms(t0)
            seen = _SeenPhoto(data, decoded.descriptions, vectors[0], probs[0])
        if ocr and seen.ocr_text is None:
            assert decoded is not None
            t0 = time.perf_counter()
            seen.ocr_text = self.ocr_engine.read(decoded.image)
            timings["ocr"] = _ms(t0)
        self._remember_photo(seen)
        ocr_text = (seen.ocr_text or "") if ocr else ""
        read = render_image_text(descriptions=seen.descriptions, ocr_text=ocr_text)
        if not describe:
            return read, read, seen.vector, seen.probs, timings
        labels = (
            self.visual.top_labels(seen.probs[None], self.label_style.k)[0] if self.labels else []
        )
        text = render_image_text(
            descriptions=seen.descriptions,
            ocr_text=ocr_text,
            labels=labels,
            colours=colour_names(decoded.image) if decoded is not None and colours else (),
            style=self.label_style,
        )
        return text, read, seen.vector, seen.probs, timings

    def _seen_photo(self, data: bytes) -> _SeenPhoto | None:
        """The forward pass (and OCR) of these very bytes if a recent query ran it."""
        with self._seen_lock:
            seen = self._seen_photos.get(id(data))
            if seen is None or seen.data is not data:  # an id reused by other bytes
                return None
            self._seen_photos.move_to_end(id(data))
            return seen

    def _remember_photo(self, seen: _SeenPhoto) -> None:
        # only immutable bytes: a bytearray could change under the same identity
        if type(seen.data) is not bytes:
            return
        with self._seen_lock:
            self._seen_photos[id(seen.data)] = seen
            self._seen_photos.move_to_end(id(seen.data))
            while len(self._seen_photos) > SEEN_PHOTOS:
                self._seen_photos.popitem(last=False)

    def query_audio(self, data: bytes) -> tuple[str, dict[str, float]]:
        """A spoken query → (transcript, timings in ms)."""
        source = "query audio"
        t0 = time.perf_counter()
        audio = decode_audio(source, data, self.limits)
        check_not_silent(source, audio)
        timings = {"decode": _ms(t0)}
        t0 = time.perf_counter()
        words = self._transcribe(audio)
        timings["transcribe"] = _ms(t0)
        if not words:
            raise InputError(source, "no speech recognised")
        from edgerag.encoders.speech import join_words

        return join_words(words), timings

    # images ------------------------------------------------------------------------------
    def _image_document(
        self,
        source: str,
        data: bytes,
        decoded: DecodedImage | None = None,
        encoded: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> MediaDocument:
        decoded = decoded or decode_image(source, data, self.limits)
        item = self._image_items(source, [decoded.image], ocr=self.ocr, encoded=encoded)[0]
        caption = "\n".join(decoded.descriptions)
        if caption:
            item.metadata["caption"] = caption
        if decoded.exif:
            item.metadata["exif"] = decoded.exif
        item.text = self._image_text(source, decoded.descriptions, item.metadata, decoded.image)
        meta = {
            "format": decoded.format,
            "width": decoded.width,
            "height": decoded.height,
            "frames": decoded.frames,
            "bytes": len(data),
        }
        title = decoded.descriptions[0] if decoded.descriptions else filename_words(source) or None
        return MediaDocument(source, Modality.IMAGE, decoded.mime, title, meta, [item])

    def _image_items(
        self,
        source: str,
        images: list[Any],
        ocr: bool,
        encoded: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[MediaItem]:
        """Items for images/frames: one batched forward pass (unless the caller already ran
        it: ``encoded`` = features, probabilities), then OCR per image."""
        vectors, probs = encoded if encoded is not None else self.visual.encode(images)
        top = self.visual.top_labels(probs, max(self.label_style.k, LABELS_IN_METADATA))
        items = []
        for i, image in enumerate(images):
            meta: dict[str, Any] = {
                "labels": [[c.name, round(p, 4)] for c, p in top[i][:LABELS_IN_METADATA]],
            }
            meta["_labels"] = top[i]  # full classes for text rendering; removed below
            if self.caption_bank is not None:
                meta["similar_captions"] = self.caption_bank.describe(vectors[i])
            if ocr:
                meta["ocr_text"] = self.ocr_engine.read(image)
            items.append(
                MediaItem(i, Modality.IMAGE, "", image, make_thumbnail(image), visual=vectors[i])
            )
            items[-1].metadata = meta
        return items

    def _image_text(
        self, source: str | None, descriptions: list[str], meta: dict[str, Any], image: Any
    ) -> str:
        recognised = meta.pop("_labels", [])
        labels = [(c, p) for c, p in recognised if p >= LABEL_TEXT_MIN_PROB] if self.labels else []
        colours = colour_names(image) if self.label_style.colours else []
        if colours:
            meta["colours"] = colours
        return render_image_text(
            descriptions=descriptions,
            ocr_text=meta.get("ocr_text", ""),
            labels=labels,
            colours=colours,
            filename=filename_words(source) if source else "",
            similar=meta.get("similar_captions", ()),
            style=self.label_style,
        )

    # audio -------------------------------------------------------------------------------
    def _transcribe(self, audio: DecodedAudio) -> list[Any]:
        with self._whisper_lock:  # one transcription at a time: it already uses every thread
            words: list[Any] = self.transcriber.transcribe(audio.samples)
        return words

    def _audio_document(self, source: str, data: bytes) -> MediaDocument:
        audio = decode_audio(source, data, self.limits)
        check_not_silent(source, audio)
        items = self._audio_items(source, audio, strict=True)
        suffix = PurePath(source).suffix.lower()
        mime = AUDIO_MIMES.get(suffix, "audio/unknown")
        title = filename_words(source) or None
        return MediaDocument(source, Modality.AUDIO, mime, title, audio.metadata, items)

    def _audio_items(self, source: str, audio: DecodedAudio, strict: bool) -> list[MediaItem]:
        if not self.transcribe:
            return [MediaItem(0, Modality.AUDIO, "", None, None, 0.0, round(audio.duration, 3), {})]
        from edgerag.encoders.speech import join_words

        words = self._transcribe(audio)
        if not words:
            if strict:
                raise InputError(source, "no speech recognised in the audio")
            return []
        windows = window_words(words, audio.duration, self.audio_window_s, self.audio_overlap_s)
        items = []
        for i, win in enumerate(windows):
            transcript = join_words(list(win.words))
            meta = {
                "transcript": transcript,
                "words": [[w.text, round(w.start, 2), round(w.end, 2)] for w in win.words],
            }
            items.append(
                MediaItem(i, Modality.AUDIO, transcript, None, None, win.t_start, win.t_end, meta)
            )
        return items

    # video -------------------------------------------------------------------------------
    def _video_document(self, source: str, data: bytes) -> MediaDocument:
        video = sample_frames(source, data, self.limits, self.video_fps, self.frame_dedup_threshold)
        frame_items = self._frame_items(source, video.frames)
        audio_items: list[MediaItem] = []
        if video.metadata.get("has_audio"):
            audio_items = self._video_audio_items(source, data, video.metadata)
        items = sorted(
            frame_items + audio_items, key=lambda it: (it.t_start or 0.0, it.modality.value)
        )
        for position, item in enumerate(items):
            item.position = position
        suffix = PurePath(source).suffix.lower()
        mime = VIDEO_MIMES.get(suffix, "video/unknown")
        return MediaDocument(
            source, Modality.VIDEO, mime, filename_words(source) or None, video.metadata, items
        )

    def _frame_items(self, source: str, frames: list[Frame]) -> list[MediaItem]:
        items = self._image_items(source, [f.image for f in frames], ocr=self.video_ocr)
        for frame, item in zip(frames, items, strict=True):
            item.t_start, item.t_end = frame.t_start, frame.t_end
            item.metadata["frame_index"] = frame.index
            item.text = self._image_text(None, [], item.metadata, frame.image)
        return items

    def _video_audio_items(self, source: str, data: bytes, meta: dict[str, Any]) -> list[MediaItem]:
        """The audio track's windows; a silent or speechless track is noted, not an error."""
        try:
            audio = decode_audio(source, data, self.limits, what="audio track")
            check_not_silent(source, audio, "audio track")
        except InputTooLargeError:
            raise
        except InputError as exc:
            logger.info("%s: audio track skipped: %s", source, exc.reason)
            meta["audio_track"] = exc.reason
            return []
        meta["audio_track"] = audio.metadata
        items = self._audio_items(source, audio, strict=False)
        if not items:
            meta["audio_track"] = {**audio.metadata, "speech": False}
        return items


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


_DEFAULT: MediaPipeline | None = None
_DEFAULT_LOCK = threading.Lock()


def extract_media(
    source: str, data: bytes, pipeline: MediaPipeline | None = None, limits: Limits | None = None
) -> MediaDocument:
    """Extract a media file with ``pipeline`` (default: one shared pipeline per process)."""
    global _DEFAULT
    if pipeline is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None or (limits is not None and _DEFAULT.limits != limits):
                _DEFAULT = MediaPipeline(limits)
            pipeline = _DEFAULT
    return pipeline.extract(source, data)


__all__ = [
    "MEDIA_SUFFIXES",
    "MediaDocument",
    "MediaItem",
    "MediaPipeline",
    "extract_media",
    "media_modality",
    "sniff_modality",
]
