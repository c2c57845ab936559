"""Regressions for what the file fuzzer (tests/test_fuzz.py) found, each with the minimal input.

1. Reader connections of ended threads were kept open for the store's lifetime: every new thread
   that read (a fuzz harness thread per input; in the server, AnyIO retires idle worker threads
   and starts new ones) leaked two file descriptors, and after ~10,000 inputs the collection's
   close failed with "Too many open files" while checkpointing its index.
2. ``EngineConfig(ocr=False)`` still ran tesseract on every kept video frame (the engine did not
   pass it on as the pipeline's ``video_ocr``): the fuzz run took 5x longer than it should.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from edgerag import Engine, EngineConfig, IndexConfig

FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_threads_that_end_do_not_leak_reader_connections(tmp_path):
    with Engine.open(tmp_path / "kb", FAST) as engine:
        engine.ingest([("a.txt", b"pump seal torque 25 Nm")])
        engine.search("pump")  # this thread's reader
        before = open_fds()
        for _ in range(300):  # one short-lived thread per search, as the fuzz harness did
            thread = threading.Thread(target=lambda: engine.search("seal", k=1))
            thread.start()
            thread.join()
        assert open_fds() - before <= 4, "reader connections of ended threads stay open"
        assert engine.search("torque").hits
    # close() still closes every reader (a live one included).
    assert open_fds() <= before


def test_ocr_off_turns_off_video_frame_ocr_too():
    pytest.importorskip("av")
    with Engine.open(":memory:", EngineConfig(encoder="hash", ocr=False)) as engine:
        assert engine.media.ocr is False and engine.media.video_ocr is False
    with Engine.open(":memory:", EngineConfig(encoder="hash")) as engine:
        assert engine.media.ocr is True and engine.media.video_ocr is True
