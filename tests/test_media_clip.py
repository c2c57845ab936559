"""The CLIP/SigLIP joint-space loader, on a tiny randomly initialised CLIP-like ONNX pair.

Only plumbing is verified here (loading, shapes, normalisation, determinism, errors): no real
CLIP weights ship anywhere reachable, so retrieval quality needs a user's weights.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from edgerag.encoders.clip import ClipEncoder, download_clip  # noqa: E402
from edgerag.errors import ConfigError, EncoderError  # noqa: E402

DIM = 16
CONTEXT = 12
WORDS = ["<pad>", "<unk>", "a", "photo", "of", "pump", "valve", "red", "blue", "cat", "dog"]


class _TinyText(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(len(WORDS), 24)
        self.proj = torch.nn.Linear(24, DIM)

    def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.emb(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.proj(pooled)


class _TinyVision(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=8, stride=8)
        self.proj = torch.nn.Linear(8, DIM)

    def forward(self, pixel_values):  # type: ignore[no-untyped-def]
        return self.proj(torch.relu(self.conv(pixel_values)).mean(dim=(2, 3)))


def _export(model: torch.nn.Module, args: tuple, path: Path, inputs: list[str], out: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        _run_export(model, args, path, inputs, out)


def _run_export(
    model: torch.nn.Module, args: tuple, path: Path, inputs: list[str], out: str
) -> None:
    torch.onnx.export(
        model.eval(),
        args,
        str(path),
        input_names=inputs,
        output_names=[out],
        dynamic_axes={**{name: {0: "n"} for name in inputs}, out: {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


def _tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tinyclip")
    ids = torch.zeros(2, CONTEXT, dtype=torch.long)
    _export(_TinyText(), (ids, torch.ones_like(ids)), d / "textual.onnx",
            ["input_ids", "attention_mask"], "text_embeds")  # fmt: skip
    _export(_TinyVision(), (torch.zeros(2, 3, 32, 32),), d / "visual.onnx",
            ["pixel_values"], "image_embeds")  # fmt: skip
    _tokenizer(d / "tokenizer.json")
    config = {"image_size": 32, "context_length": CONTEXT, "image_mean": [0.5] * 3,
              "image_std": [0.5] * 3, "pad_token_id": 0}  # fmt: skip
    (d / "preprocessor_config.json").write_text(json.dumps(config))
    return d


@pytest.fixture(scope="module")
def clip(clip_dir: Path) -> ClipEncoder:
    return ClipEncoder(clip_dir)


def _images() -> list:
    rng = np.random.default_rng(1)
    return [
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)),
        Image.new("RGB", (50, 50), (200, 30, 30)),
        Image.new("RGBA", (64, 32), (0, 0, 255, 128)),
    ]


def test_shapes_and_unit_norm(clip: ClipEncoder) -> None:
    assert clip.dim == DIM
    t = clip.encode_text(["a photo of a pump", "red valve", "dog"])
    v = clip.encode_images(_images())
    assert t.shape == (3, DIM) and v.shape == (3, DIM)
    assert t.dtype == np.float32 and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert clip.encode_text([]).shape == (0, DIM)


def test_deterministic_and_batch_independent(clip: ClipEncoder) -> None:
    texts = ["a photo of a cat", "blue pump", "unknownword valve"]
    a = clip.encode_text(texts)
    b = np.vstack([clip.encode_text([t]) for t in texts])
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a[0], a[1])  # different texts → different vectors
    images = _images()
    np.testing.assert_allclose(clip.encode_images(images), clip.encode_images(images), atol=1e-6)


def test_joint_space_scores_text_against_images(clip: ClipEncoder) -> None:
    scores = clip.encode_text(["red pump"]) @ clip.encode_images(_images()).T
    assert scores.shape == (1, 3)
    assert np.all(np.abs(scores) <= 1.0 + 1e-5)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ClipEncoder(tmp_path / "nope")


def test_missing_tower_names_the_file(tmp_path: Path, clip_dir: Path) -> None:
    (tmp_path / "textual.onnx").write_bytes((clip_dir / "textual.onnx").read_bytes())
    with pytest.raises(ConfigError, match="image tower.*visual.onnx"):
        ClipEncoder(tmp_path)


def test_corrupt_onnx_names_the_file(tmp_path: Path, clip_dir: Path) -> None:
    for name in ("visual.onnx", "tokenizer.json", "preprocessor_config.json"):
        (tmp_path / name).write_bytes((clip_dir / name).read_bytes())
    (tmp_path / "textual.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(EncoderError, match="textual.onnx"):
        ClipEncoder(tmp_path)


def test_dimension_mismatch_is_reported(tmp_path: Path, clip_dir: Path) -> None:
    for name in ("textual.onnx", "tokenizer.json", "preprocessor_config.json"):
        (tmp_path / name).write_bytes((clip_dir / name).read_bytes())
    wide = _TinyVision()
    wide.proj = torch.nn.Linear(8, DIM * 2)
    _export(wide, (torch.zeros(1, 3, 32, 32),), tmp_path / "visual.onnx", ["pixel_values"], "x")
    with pytest.raises(EncoderError, match="16-d.*32-d"):
        ClipEncoder(tmp_path)


def test_download_needs_explicit_consent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="allow_download"):
        download_clip("some/clip-onnx", tmp_path)
