"""Extraction from real files written to tmp_path: formats, provenance, and bad input."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest import Extracted, Limits, extract, supported_suffixes
from edgerag.ingest.extract.pdf import clean_pdf_text, strip_running_lines
from edgerag.types import Modality

fpdf = pytest.importorskip("fpdf")
pypdf = pytest.importorskip("pypdf")

PAGE_TEXTS = [
    "Kestrel pump startup. Open the suction valve fully before priming.",
    "Lubrication: replace bearing grease every 8000 operating hours.",
    "Alarm E-107 means seal flush pressure is low.",
]


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    pdf = fpdf.FPDF()
    pdf.set_font("Helvetica", size=12)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def encrypt(data: bytes, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def extract_file(path: Path, data: bytes, limits: Limits | None = None) -> Extracted:
    """Write a real file, read it back, extract it under its full path."""
    path.write_bytes(data)
    return extract(str(path), path.read_bytes(), limits)


# --- text formats -------------------------------------------------------------------------


def test_supported_suffixes() -> None:
    assert {".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".log"} <= supported_suffixes()
    assert {".html", ".htm", ".pdf"} <= supported_suffixes()


def test_txt_whitespace_normalised_paragraphs_kept(tmp_path: Path) -> None:
    raw = "Line  one\twith   gaps   \r\nline two\r\n\r\n\r\n\r\nSecond\u00a0 paragraph.\n"
    got = extract_file(tmp_path / "notes.TXT", raw.encode())
    assert got.pages == [(None, "Line one with gaps\nline two\n\nSecond paragraph.")]
    assert got.modality is Modality.TEXT
    assert got.mime == "text/plain"
    assert got.metadata["encoding"] == "utf-8"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("\ufeffcafé ok".encode(), "utf-8-sig"),
        ("\ufeffcafé ok".encode("utf-16-le"), "utf-16-le"),
        ("\ufeffcafé ok".encode("utf-16-be"), "utf-16-be"),
    ],
)
def test_bom_encodings(tmp_path: Path, data: bytes, encoding: str) -> None:
    got = extract_file(tmp_path / "bom.txt", data)
    assert got.pages == [(None, "café ok")]
    assert got.metadata["encoding"] == encoding


def test_markdown_keeps_headings_and_title(tmp_path: Path) -> None:
    md = "Intro line\n\n# KX-40 Manual\n\n## Safety\n\n- Lock out power.\n  - Verify zero energy.\n"
    got = extract_file(tmp_path / "manual.md", md.encode())
    text = got.pages[0][1]
    assert got.title == "KX-40 Manual"
    # Headings are structure now (the section path), not markup in the text.
    assert "KX-40 Manual\n\nSafety" in text and "#" not in text
    assert "  - Verify zero energy." in text  # list nesting survives
    lists = [b for b in got.blocks if b.kind == "list"]
    assert [b.section for b in lists] == [("KX-40 Manual", "Safety")]
    assert got.mime == "text/markdown"


def test_markdown_setext_and_fenced_code(tmp_path: Path) -> None:
    md = "```\n# not a heading\n```\n\nReal Title\n==========\n\nbody\n"
    assert extract_file(tmp_path / "a.markdown", md.encode()).title == "Real Title"


def test_rst_title(tmp_path: Path) -> None:
    rst = "==========\nPump Guide\n==========\n\nIntro text.\n"
    assert extract_file(tmp_path / "guide.rst", rst.encode()).title == "Pump Guide"


def test_csv_and_json_are_text(tmp_path: Path) -> None:
    assert (
        extract_file(tmp_path / "p.csv", b"part,qty\nKX40-SC-2210,1\n")
        .pages[0][1]
        .startswith("part,qty")
    )
    assert extract_file(tmp_path / "p.json", b'{"a": 1}').mime == "application/json"


# --- HTML ---------------------------------------------------------------------------------

HTML = """<!doctype html><html><head><title>Service Bulletin 7</title>
<style>p{color:red}</style><script>var secret = 1;</script></head>
<body><nav><a href="/">Home</a> | <a href="/x">Products</a></nav>
<h1>Gland bolt torque</h1>
<p>The torque   is now
<b>28 N·m</b>.</p><div hidden>invisible</div>
<ul><li>Clean threads</li><li>Torque in a cross pattern</li></ul>
<ol><li>Run 24 h</li><li>Re-torque</li></ol>
<table><tr><th>Item</th><th>Old</th><th>New</th></tr><tr><td>Gland</td><td>24</td><td>28</td></tr></table>
<!-- a comment --></body></html>"""


def test_html_visible_text_lines(tmp_path: Path) -> None:
    got = extract_file(tmp_path / "bulletin.html", HTML.encode())
    text = got.pages[0][1]
    assert got.title == "Service Bulletin 7"
    assert got.mime == "text/html"
    for gone in ("secret", "color", "Home", "Products", "invisible", "comment"):
        assert gone not in text
    assert text.startswith("Gland bolt torque\n\nThe torque is now 28 N·m.")
    assert "- Clean threads\n- Torque in a cross pattern" in text
    assert "1. Run 24 h\n2. Re-torque" in text
    # A table row reads as a sentence that keeps its headers (no pipes).
    assert "Item Gland · Old 24 · New 28" in text


def test_html_title_falls_back_to_h1(tmp_path: Path) -> None:
    got = extract_file(tmp_path / "x.htm", b"<h1>Only <i>heading</i></h1><p>body</p>")
    assert got.title == "Only heading"


def test_html_declared_legacy_charset(tmp_path: Path) -> None:
    page = '<meta charset="iso-8859-1"><p>caf\xe9</p>'.encode("latin-1")
    assert extract_file(tmp_path / "old.html", page).pages[0][1] == "café"


# --- PDF ----------------------------------------------------------------------------------


def test_pdf_pages_keep_numbers(tmp_path: Path) -> None:
    got = extract_file(tmp_path / "manual.pdf", make_pdf(PAGE_TEXTS, title="KX-40 Manual"))
    assert [number for number, _ in got.pages] == [1, 2, 3]
    for (_, text), expected in zip(got.pages, PAGE_TEXTS, strict=True):
        assert text == expected
    assert got.title == "KX-40 Manual"
    assert got.mime == "application/pdf"
    assert got.metadata["format"] == "pdf"
    assert got.metadata["pages"] == 3


def test_pdf_empty_user_password_is_opened(tmp_path: Path) -> None:
    got = extract_file(tmp_path / "locked-print.pdf", encrypt(make_pdf(PAGE_TEXTS), ""))
    assert got.pages[2][1] == PAGE_TEXTS[2]


def test_pdf_named_txt_is_sniffed(tmp_path: Path) -> None:
    got = extract_file(tmp_path / "renamed.txt", make_pdf(PAGE_TEXTS[:1]))
    assert got.mime == "application/pdf"


def test_pdf_blank_pages_keep_their_slot(tmp_path: Path) -> None:
    got = extract_file(tmp_path / "gap.pdf", make_pdf(["first", "", "third"]))
    assert got.pages == [(1, "first"), (2, ""), (3, "third")]


def test_clean_pdf_text_fixes_hyphenation_and_ligatures() -> None:
    raw = "the mainte-\nnance interval\nKX-\n40 skid, \ufb01lter  change"
    assert clean_pdf_text(raw) == "the maintenance interval\nKX-\n40 skid, filter change"


def test_running_headers_and_footers_are_removed() -> None:
    def page(n: int, header: str = "KX-40 Manual Rev C") -> tuple[int | None, str]:
        return (
            n,
            f"{header}\nPart {'ABCD'[n - 1]} intro.\nSame middle line\n"
            f"Body {'x' * n}.\nPage {n} of 4",
        )

    pages = [page(1), page(2), page(3, header="Chapter start"), page(4)]
    assert strip_running_lines(pages) == [
        (n, text.split("\n", 1)[1].rsplit("\n", 1)[0] if n != 3 else text.rsplit("\n", 1)[0])
        for n, text in pages
    ]
    assert strip_running_lines(pages)[2][1].startswith("Chapter start\nPart C intro.")
    assert strip_running_lines(pages[:2]) == pages[:2]  # too few pages to tell


# --- bad input ----------------------------------------------------------------------------


def _scanned_pdf() -> bytes:
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")  # ink, but no text layer
    return bytes(pdf.output())


def _bad_inputs() -> list[tuple[str, bytes, str]]:
    good = make_pdf(PAGE_TEXTS * 3)
    return [
        ("truncated.pdf", good[: len(good) // 2], "truncated PDF"),
        ("secret.pdf", encrypt(good, "s3cret"), "encrypted PDF: password required"),
        ("garbage.pdf", random.Random(7).randbytes(4000), "not a PDF"),
        ("fake.pdf", b"%PDF-1.7\n" + random.Random(8).randbytes(3000) + b"\n%%EOF\n", "PDF"),
        ("scan.pdf", _scanned_pdf(), "no extractable text — scanned?"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "binary data"),
        ("ctrl.log", bytes(range(1, 32)) * 20, "binary data"),
        ("empty.md", b"", "empty file"),
        ("blank.txt", b" \n\t\n", "no text"),
        ("latin1.txt", "Ölwechsel für Pumpe".encode("latin-1"), "not valid UTF-8 (first bad byte"),
        ("bad16.txt", b"\xff\xfe\x00\xd8", "not valid UTF-16"),
        ("photo.docx", b"PK\x03\x04", "unsupported file type"),
        ("README", b"hello", "unsupported file type"),
        ("script.html", b"<script>alert(1)</script>", "no extractable text"),
    ]


@pytest.mark.parametrize(("name", "data", "reason"), _bad_inputs(), ids=lambda v: str(v)[:20])
def test_bad_input_names_file_and_reason(tmp_path: Path, name: str, data: bytes, reason: str):
    with pytest.raises(InputError) as info:
        extract_file(tmp_path / name, data)
    message = str(info.value)
    assert name in message
    assert reason in message
    assert info.value.reason in message


def test_latin1_reports_offset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"first bad byte 0xd6 at offset 0"):
        extract_file(tmp_path / "de.txt", "Öl".encode("latin-1"))


@pytest.mark.parametrize(
    ("name", "data", "limits"),
    [
        ("big.txt", b"a" * 2000, Limits(max_file_bytes=1000)),
        ("long.txt", b"word " * 500, Limits(max_text_chars=100)),
        ("many.pdf", make_pdf(["p"] * 4), Limits(max_pdf_pages=3)),
        ("wordy.pdf", make_pdf(PAGE_TEXTS), Limits(max_text_chars=80)),
    ],
)
def test_over_limit(tmp_path: Path, name: str, data: bytes, limits: Limits) -> None:
    with pytest.raises(InputTooLargeError) as info:
        extract_file(tmp_path / name, data, limits)
    assert name in str(info.value) and "limit" in str(info.value)


def test_no_library_exception_escapes_on_mangled_pdfs(tmp_path: Path) -> None:
    good = make_pdf(PAGE_TEXTS)
    rng = random.Random(42)
    for i in range(40):
        data = bytearray(good)
        for _ in range(rng.randint(1, 30)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            extract(f"mangled-{i}.pdf", bytes(data))
        except InputError as exc:
            assert f"mangled-{i}.pdf" in str(exc)
