"""File fuzzing support: a seed corpus of real files, mutators, a hang-detecting runner and the
checks every fuzz run ends with (clear rejections, nothing lost, collection consistent).

The seeds are the demo corpus (pdf, md, html, txt, png, jpg, wav, mp4) plus an mp3 made from the
demo wav with ffmpeg at run time, so no binary test blobs live in the repository.
"""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
SEED_FILES = {
    "txt": DEMO / "corpus" / "shift-log.txt",
    "md": DEMO / "corpus" / "kx40-troubleshooting.md",
    "html": DEMO / "corpus" / "service-bulletin-2026-03.html",
    "pdf": DEMO / "corpus" / "kx40-manual.pdf",
    "png": DEMO / "media" / "kx40-seal-flush-plan11.png",
    "jpg": DEMO / "media" / "p2a-skid-photo.jpg",
    "wav": DEMO / "queries" / "spoken-question.wav",
    "mp4": DEMO / "media" / "seal-flush-valve-instruction.mp4",
}
TYPES = ("txt", "md", "html", "pdf", "png", "jpg", "wav", "mp3", "mp4")

# What a rejection must never show: Python internals instead of a reason a technician reads.
INTERNALS = re.compile(
    r"<bytes|<_io\.|Errno|Traceback|object at 0x|0x[0-9a-f]{6,}|\bNone\b|"
    r"Error\(|Exception\(|\w+Error:|\bb'|\bb\""
)


def make_mp3(wav: Path, seconds: float = 3.0) -> bytes:
    """A short real mp3 made from ``wav`` (ffmpeg, libmp3lame)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "seed.mp3"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-t", str(seconds), "-i", str(wav), str(out)],
            check=True,
            timeout=120,
        )
        return out.read_bytes()


def seed_corpus() -> dict[str, bytes]:
    """Type → bytes of one real file of that type."""
    seeds = {kind: path.read_bytes() for kind, path in SEED_FILES.items()}
    seeds["mp3"] = make_mp3(SEED_FILES["wav"])
    return seeds


# mutators ---------------------------------------------------------------------------------
def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, max(2, len(data)))]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 2, 8, 64))):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
    return bytes(out)


def insert_garbage(data: bytes, rng: random.Random) -> bytes:
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + rng.randbytes(rng.choice((1, 7, 100, 4096))) + data[pos:]


def zero_length(data: bytes, rng: random.Random) -> bytes:
    return b""


def header_only(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.choice((4, 8, 16, 32, 64, 256))]


def zero_range(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.choice((16, 256, 4096)))
    return data[:start] + bytes(end - start) + data[end:]


def duplicate_range(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    piece = data[start : start + rng.choice((16, 512, 8192))]
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + piece + data[pos:]


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice((1, 10, 1000)))


MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": truncate,
    "flip": flip_bytes,
    "insert": insert_garbage,
    "zero-length": zero_length,
    "header-only": header_only,
    "zero-range": zero_range,
    "dup-range": duplicate_range,
    "random": random_bytes,
}


@dataclass(frozen=True)
class FuzzInput:
    name: str
    data: bytes
    kind: str
    mutation: str


def fuzz_inputs(seeds: dict[str, bytes], count: int, seed: int) -> Iterator[FuzzInput]:
    """``count`` mutated inputs, round-robin over types, reproducible from ``seed``."""
    rng = random.Random(seed)
    names = list(MUTATORS)
    for i in range(count):
        kind = TYPES[i % len(TYPES)]
        mutation = names[(i // len(TYPES)) % len(names)] if i < 2 * len(names) * len(TYPES) else ""
        mutation = mutation or rng.choice(names)
        data = MUTATORS[mutation](seeds[kind], rng)
        if rng.random() < 0.15:  # stacked mutations reach deeper into parsers
            data = MUTATORS[rng.choice(names)](data or seeds[kind], rng)
        yield FuzzInput(f"fz{seed}-{i:05d}-{mutation}.{kind}", data, kind, mutation)


# running -----------------------------------------------------------------------------------
@dataclass
class FuzzOutcome:
    inputs: int = 0
    added: int = 0
    unchanged: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    crashes: list[tuple[str, str]] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)


def fuzz_engine(engine, inputs: Iterator[FuzzInput], timeout: float) -> FuzzOutcome:
    """Ingest each input on its own; classify it as added, rejected, crash or hang.

    Ingests run on one long-lived worker thread; the caller waits ``timeout`` seconds for each.
    A hang stops the run (the engine may hold its write lock) and leaves the worker behind.
    """
    outcome = FuzzOutcome()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz")
    try:
        for item in inputs:
            outcome.inputs += 1
            future = worker.submit(engine.ingest, [(item.name, item.data)])
            try:
                report = future.result(timeout)
            except FutureTimeout:
                outcome.hangs.append(item.name)
                break
            except Exception as exc:  # noqa: BLE001 -- a crash is what we are looking for
                outcome.crashes.append((item.name, f"{type(exc).__name__}: {exc}"))
                continue
            outcome.added += len(report.added)
            outcome.unchanged += len(report.unchanged)
            for source, reason in report.errors:
                if source != item.name:  # a rejection must name the input it is about
                    outcome.crashes.append((item.name, f"rejection names {source!r}: {reason}"))
                outcome.rejected.append((source, reason))
    finally:
        worker.shutdown(wait=not outcome.hangs, cancel_futures=True)
    return outcome


def rejection_problems(outcome: FuzzOutcome) -> list[str]:
    """Rejections that are not one clear line giving the reason in words (that each names its
    file is checked by ``fuzz_engine``)."""
    bad = []
    for source, reason in outcome.rejected:
        line = f"{source}: {reason}"
        if "\n" in line or not reason.strip() or INTERNALS.search(reason):
            bad.append(line)
    return bad


# checks ------------------------------------------------------------------------------------
def assert_collection_clean(db_path: Path) -> None:
    """``edgerag check`` finds nothing: store, every index, FTS, originals and op log agree."""
    from edgerag.check import check_collection

    report = check_collection(db_path)
    assert report.ok, "collection not clean: " + "; ".join(report.problems)
