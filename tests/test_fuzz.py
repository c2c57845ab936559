"""File fuzzing: mutated real files of every accepted type never crash, hang, lose stored documents
or leave the collection inconsistent; each rejection is one clear line naming the file.

Speed: the hash encoder, no OCR and no transcription (the fuzzer targets the decoders and
extractors, not the models' numerics); the EfficientNet image model still runs on every decoded
image and video frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgerag import Engine, EngineConfig
from fuzz_support import (
    SEED_FILES,
    TYPES,
    assert_collection_clean,
    fuzz_engine,
    fuzz_inputs,
    rejection_problems,
    seed_corpus,
)

pytest.importorskip("av")
pytest.importorskip("PIL")

CONFIG = EngineConfig(encoder="hash", ocr=False, transcribe=False, synchronous="NORMAL")
# Generous: the box is shared and loaded; a real hang runs far past it.
PER_INPUT_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return seed_corpus()


def _known_good(engine: Engine, seeds: dict[str, bytes]) -> list[str]:
    """Ingest one clean file of each type first: the fuzz run must not lose any of them."""
    names = [f"good-{kind}.{kind}" for kind in TYPES]
    report = engine.ingest([(name, seeds[kind]) for name, kind in zip(names, TYPES, strict=True)])
    assert report.errors == [] and sorted(report.added) == sorted(names)
    return names


def _assert_still_found(engine: Engine, names: list[str]) -> None:
    for name in names:
        hits = engine.search(Path(name).stem, k=1, filters={"source": name}, mode="dense").hits
        assert hits and hits[0].source == name, f"{name} lost after fuzzing"


def _fuzz(tmp_path: Path, seeds: dict[str, bytes], count: int, seed: int) -> None:
    db = tmp_path / "kb"
    with Engine.open(db, CONFIG) as engine:
        good = _known_good(engine, seeds)
        outcome = fuzz_engine(engine, fuzz_inputs(seeds, count, seed), PER_INPUT_TIMEOUT_S)
        assert outcome.hangs == [], f"hung on {outcome.hangs}"
        assert outcome.crashes == [], f"{len(outcome.crashes)} crashes: {outcome.crashes[:5]}"
        assert outcome.inputs == count
        assert outcome.rejected, "the mutations should produce rejections"
        assert rejection_problems(outcome) == []
        _assert_still_found(engine, good)
    assert_collection_clean(db)
    print(
        f"fuzz seed={seed}: {outcome.inputs} inputs, {outcome.added} ingested, "
        f"{len(outcome.rejected)} rejected, {outcome.unchanged} unchanged, 0 crashes, 0 hangs"
    )


def test_seed_corpus_covers_every_accepted_type(seeds):
    assert set(seeds) == set(TYPES) and all(seeds.values())
    assert set(SEED_FILES) | {"mp3"} == set(TYPES)


def test_fuzz_600_inputs(tmp_path, seeds):
    _fuzz(tmp_path, seeds, count=600, seed=20261202)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_fuzz_10000_inputs(tmp_path, seeds, seed):
    """10 × 1,000 inputs, each run on a fresh collection (keeps every run's cost bounded)."""
    _fuzz(tmp_path, seeds, count=1000, seed=seed)


class _StubEngine:
    """Stands in for an engine to prove the harness itself can fail."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    def ingest(self, inputs):
        name = inputs[0][0]
        if self.behaviour == "hang":
            time.sleep(3)
        if self.behaviour == "crash":
            raise RuntimeError("boom")
        reason = "cannot identify image file <bytes 0x7f28023641d0>"
        errors = [("other-name.png" if self.behaviour == "misnamed" else name, reason)]
        return SimpleNamespace(added=[], unchanged=[], errors=errors)


def test_harness_detects_hangs_crashes_and_unclear_rejections(seeds):
    inputs = list(fuzz_inputs(seeds, 3, seed=1))
    hung = fuzz_engine(_StubEngine("hang"), iter(inputs), timeout=0.3)
    assert hung.hangs == [inputs[0].name] and hung.inputs == 1
    crashed = fuzz_engine(_StubEngine("crash"), iter(inputs), timeout=5)
    assert len(crashed.crashes) == 3 and "RuntimeError: boom" in crashed.crashes[0][1]
    unclear = fuzz_engine(_StubEngine("reject"), iter(inputs), timeout=5)
    assert unclear.crashes == [] and len(rejection_problems(unclear)) == 3
    misnamed = fuzz_engine(_StubEngine("misnamed"), iter(inputs), timeout=5)
    assert len(misnamed.crashes) == 3 and "rejection names" in misnamed.crashes[0][1]
