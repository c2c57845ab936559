"""Regressions for what the file fuzzer (tests/test_fuzz.py) found, each with the minimal input.

1. Reader connections of ended threads were kept open for the store's lifetime: every new thread
   that read (a fuzz harness thread per input; in the server, AnyIO retires idle worker threads
   and starts new ones) leaked two file descriptors, and after ~10,000 inputs the collection's
   close failed with "Too many open files" while checkpointing its index.
2. ``EngineConfig(ocr=False)`` still ran tesseract on every kept video frame (the engine did not
   pass it on as the pipeline's ``video_ocr``): the fuzz run took 5x longer than it should.
3. An 8 KB PDF whose one page draws 100,000 ``Tj`` (3.2 MB of instructions after zlib) took
   119 s to ingest; with four rules on the page the table finder alone took 45 s (pdfplumber
   builds an object per glyph). Pages now have a decoded-content limit checked before parsing,
   and pages with more text pieces than ``max_pdf_table_page_chars`` keep their text only.
4. A ruled page pdfplumber cannot parse (a byte flipped in its /MediaBox) crashed ingest: the
   table finder's failure was caught, but pdfplumber's ``close()`` parses every page again.
"""

from __future__ import annotations

import os
import threading
import zlib
from pathlib import Path

import pytest

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.ingest.extract import pdf_layout
from edgerag.ingest.limits import Limits

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


RULES = b"0 0 m 100 0 l S\n" * 4  # enough path objects for the page to go to the table finder


def content_bomb_pdf(
    copies: int,
    word: bytes = b"a",
    rules: bytes = b"",
    pages: int = 1,
    media_box: bytes = b"[0 0 612 792]",
) -> bytes:
    """A minimal PDF whose pages share one zlib content stream of ``copies`` text draws."""
    content = zlib.compress(rules + b"BT /F1 12 Tf 10 10 Td (%s) Tj ET\n" % word * copies, 9)
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox %s "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 3 0 R >>" % media_box
    ] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@pytest.fixture
def table_finder_calls(monkeypatch) -> list[int]:
    """Page indexes the pdfplumber table finder was asked about (it is not run)."""
    calls: list[int] = []
    monkeypatch.setattr(
        pdf_layout._Plumber, "tables", lambda self, index: calls.append(index) or []
    )
    return calls


@pytest.mark.timeout(60)
def test_pdf_content_bomb_is_rejected_before_parsing(monkeypatch):
    pytest.importorskip("pypdf")
    bomb = content_bomb_pdf(300_000)  # 24 KB of file, 9.6 MB of drawing instructions
    assert len(bomb) < 30_000
    parsed: list[str] = []
    monkeypatch.setattr(pdf_layout, "read_structured", lambda source, *a: parsed.append(source))
    with Engine.open(":memory:", FAST) as engine:
        report = engine.ingest([("bomb.pdf", bomb)])
        assert report.added == [] and len(report.errors) == 1
        source, reason = report.errors[0]
        assert source == "bomb.pdf"
        assert reason.startswith(
            "page 1 decodes to 9.2 MB of drawing instructions, over the 8.0 MB"
        )
        assert "Limits.max_pdf_page_content_bytes" in reason
        assert parsed == [], "the page was parsed before the limit was checked"
        assert engine.search("a").hits == []


@pytest.mark.timeout(60)
def test_pdf_pages_sharing_one_big_stream_count_once_per_page():
    pytest.importorskip("pypdf")
    bomb = content_bomb_pdf(10_000, pages=40)  # 320 KB a page, 12.8 MB for the document
    config = EngineConfig(encoder="hash", limits=Limits(max_pdf_content_bytes=4 * 1024 * 1024))
    with Engine.open(":memory:", config) as engine:
        report = engine.ingest([("shared.pdf", bomb)])
    assert report.added == []
    assert report.errors == [
        (
            "shared.pdf",
            "pages 1-14 decode to 4.3 MB of drawing instructions, over the 4.0 MB document "
            "limit (Limits.max_pdf_content_bytes)",
        )
    ]


@pytest.mark.timeout(60)
def test_fuzzer_pdf_bomb_keeps_its_text_without_the_table_finder(table_finder_calls):
    """The fuzzer's input, with rules added so the page qualifies for table finding."""
    pytest.importorskip("pypdfium2")
    bomb = content_bomb_pdf(100_000, word=b"pump", rules=RULES)  # 3.5 MB: under the page limit
    with Engine.open(":memory:", FAST) as engine:
        report = engine.ingest([("bomb.pdf", bomb)])
        assert report.errors == [] and report.added == ["bomb.pdf"]
        assert table_finder_calls == [], "table finder ran on a page of 100,000 text pieces"
        hits = engine.search("pump").hits
        assert hits and hits[0].page == 1


@pytest.mark.timeout(60)
def test_ordinary_ruled_pdf_page_still_goes_to_the_table_finder(table_finder_calls):
    pytest.importorskip("pypdfium2")
    page = content_bomb_pdf(50, word=b"pump", rules=RULES)
    with Engine.open(":memory:", FAST) as engine:
        assert engine.ingest([("small.pdf", page)]).added == ["small.pdf"]
    assert table_finder_calls == [0]


@pytest.mark.timeout(60)
def test_ruled_page_pdfplumber_cannot_parse_keeps_its_text():
    pytest.importorskip("pdfplumber")
    pytest.importorskip("pypdfium2")
    broken = content_bomb_pdf(5, word=b"pump", rules=RULES, media_box=b"[0 0 612 /x 792]")
    with Engine.open(":memory:", FAST) as engine:
        report = engine.ingest([("broken-box.pdf", broken)])
        assert report.errors == [] and report.added == ["broken-box.pdf"]
        assert engine.search("pump").hits
