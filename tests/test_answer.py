"""Cited answers end to end: real MiniLM encoder, real Q/A pairs (DATA.md), real HTTP upstream."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgerag import Engine
from edgerag.answer import Answer, ground
from edgerag.cli import main
from edgerag.errors import ConfigError
from edgerag.generation import NOT_FOUND
from edgerag.generation.extractive import split_sentences
from edgerag.generation.openai_compat import OpenAICompatGenerator
from edgerag.types import Hit
from test_generation import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("answer_bench", ROOT / "benchmarks/answer_bench.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
sys.modules["answer_bench"] = bench
_spec.loader.exec_module(bench)

CONTRACT_KEYS = {"answer", "citations", "sources", "timings_ms", "partial", "generator"}
CITATION_KEYS = {"n", "id", "doc_id", "source", "modality", "page", "t_start", "t_end", "snippet"}
_MARKER = re.compile(r"\[(\d+(?:, \d+)*)\]")


@pytest.fixture(scope="module")
def zaragoza():
    try:
        pairs = bench.load_zaragoza()
    except FileNotFoundError:
        pytest.skip("zaragoza-construction-faq is not installed")
    return pairs[::4]  # 126 answers: a fixed, spread-out slice of the 503


@pytest.fixture(scope="module")
def faq(zaragoza):
    """The default engine (MiniLM int8 ONNX encoder) over the real Zaragoza answers."""
    with Engine.open(":memory:") as eng:
        report = eng.ingest([(qa.name, qa.answer.encode()) for qa in zaragoza])
        assert report.ok and len(report.added) == len(zaragoza)
        yield eng


def assert_grounded(answer: Answer) -> None:
    """Every citation and every [n] points at a retrieved source; extractive text is verbatim."""
    assert set(answer.to_dict()) == CONTRACT_KEYS
    n_sources = len(answer.sources)
    for citation in answer.citations:
        source = answer.sources[citation.n - 1]
        assert 1 <= citation.n <= n_sources
        assert (citation.id, citation.doc_id, citation.source) == (
            source.id,
            source.doc_id,
            source.source,
        )
        assert set(citation.to_dict()) == CITATION_KEYS
    cited = {c.n for c in answer.citations}
    for match in _MARKER.finditer(answer.answer):
        assert {int(n) for n in match.group(1).split(", ")} <= cited
    if answer.generator == "extractive" and answer.answer != NOT_FOUND:
        for sentence, n in re.findall(r"(.+?) \[(\d+)\]\s*", answer.answer):
            flat = " ".join(answer.sources[int(n) - 1].text.split())
            assert sentence.strip() in flat


# ------------------------------------------------------------------------------ quality
def test_extractive_answers_contain_the_gold_sentence(faq, zaragoza):
    """Real Q/A pairs: the answer quotes the gold (first) answer sentence at a measured rate."""
    questions = zaragoza[:50]
    contains = cited_gold_doc = 0
    for qa in questions:
        answer = faq.ask(qa.question, k=5)
        assert_grounded(answer)
        contains += bench.contains_gold(answer.answer, qa.gold)
        cited_gold_doc += any(c.doc_id == qa.name for c in answer.citations)
    rate, doc_rate = contains / len(questions), cited_gold_doc / len(questions)
    print(
        f"\nextractive gold-sentence rate {rate:.2f}, cites gold doc {doc_rate:.2f} "
        f"(n={len(questions)}, corpus {len(zaragoza)} answers)"
    )
    # Measured 0.74 / 0.74 on this slice (0.65 over all 503 in the benchmark); the thresholds
    # leave room for index nondeterminism, not for a regression.
    assert rate >= 0.64
    assert doc_rate >= 0.64


def test_unsupported_questions_are_not_answered(faq):
    """Questions from another domain (perlfaq) against construction answers: say so."""
    try:
        perl = bench.load_perlfaq()[:40]
    except FileNotFoundError:
        pytest.skip("perl-doc is not installed")
    answers = [faq.ask(qa.question, k=5) for qa in perl]
    refused = [a for a in answers if a.answer == NOT_FOUND]
    for answer in refused:
        assert answer.citations == []
    rate = len(refused) / len(answers)
    print(f"\nout-of-domain questions refused: {rate:.2f}")
    assert rate >= 0.9  # measured 1.00 here, 0.97 over 150 perlfaq questions vs all 503 answers
    answer = faq.ask("How do I reverse a string with the reverse function in Perl?")
    assert answer.answer == NOT_FOUND and answer.citations == [] and answer.sources


def test_bad_k_and_empty_question_are_config_errors(engine):
    for k in (0, 101):
        with pytest.raises(ConfigError, match="k must be"):
            engine.ask("seal", k=k)
    with pytest.raises(ConfigError, match="empty query"):
        engine.ask("   ")


def test_empty_collection_says_so():
    with Engine.open(":memory:") as eng:
        answer = eng.ask("what is a building permit?")
    assert answer.answer == NOT_FOUND and answer.sources == [] and answer.citations == []


# ------------------------------------------------------------------------------ grounding
WORDS = st.sampled_from(
    "building permit cost weeks detailed plan facade extension roof drainage foundation "
    "moisture ventilation insulation contractor inspection heat pump window energy class "
    "zzyzx quantum perl regex banana the of how what".split()
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(WORDS, min_size=1, max_size=9),
    k=st.integers(1, 8),
    mode=st.sampled_from(["hybrid", "dense", "bm25"]),
)
def test_citations_always_refer_to_retrieved_items(faq, words, k, mode):
    question = " ".join(words) + "?"
    answer = faq.ask(question, k=k, mode=mode)
    assert len(answer.sources) <= k
    assert_grounded(answer)


def test_ground_drops_markers_that_name_no_source():
    hits = [
        Hit(
            key=i,
            id=f"d{i}#0",
            doc_id=f"d{i}",
            source=f"d{i}.txt",
            modality="text",
            score=1.0,
            text=f"Fact number {i} is true.",
        )
        for i in (1, 2)
    ]
    text, citations = ground("Fact number 1 is true [1]. Made up [7]. Both [2, 9].", hits)
    assert text == "Fact number 1 is true [1]. Made up . Both [2]."
    assert [c.n for c in citations] == [1, 2]
    assert citations[0].snippet == "Fact number 1 is true"  # the quoted claim
    assert citations[1].snippet == "Fact number 2 is true."  # not a quote: the source's start


# ------------------------------------------------------------------------------ streaming
def test_stream_yields_sources_before_tokens(faq, zaragoza):
    events = list(faq.ask_stream(zaragoza[0].question, k=3))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"token"} and len(kinds) > 3
    done = events[-1]
    assert set(done) == CONTRACT_KEYS - {"sources"} | {"type"}
    assert done["answer"] == "".join(e["text"] for e in events[1:-1]).strip()
    assert {c["id"] for c in done["citations"]} <= {s["id"] for s in events[0]["sources"]}


@pytest.fixture
def fake():
    server = FakeOpenAI(
        answer="Replace the mechanical seal when the pump leaks at the shaft "
        "[1]. Use 25 Nm [2]. See also [7]."
    )
    yield server
    server.close()


def test_llm_answer_is_grounded(engine, docs, fake):
    engine.ingest(docs)
    g = OpenAICompatGenerator(fake.url, "fake", retries=0)
    answer = engine.ask("when do I replace the pump seal?", k=2, generator=g)
    assert answer.generator == "openai:fake" and not answer.partial
    assert "[7]" not in answer.answer and answer.answer.endswith("See also .")
    assert [c.n for c in answer.citations] == [1, 2]
    assert answer.citations[0].snippet.startswith("Replace the mechanical seal")
    assert_grounded(answer)
    user = fake.requests[0]["body"]["messages"][1]["content"]
    assert "[1] (pump.md)" in user


def test_llm_stream_sends_sources_before_calling_the_model(engine, docs, fake):
    engine.ingest(docs)
    g = OpenAICompatGenerator(fake.url, "fake", retries=0)
    events = engine.ask_stream("when do I replace the pump seal?", k=2, generator=g)
    first = next(events)
    assert first["type"] == "sources" and fake.requests == []  # model not even asked yet
    rest = list(events)
    assert len(fake.requests) == 1 and fake.requests[0]["body"]["stream"] is True
    assert [e["type"] for e in rest][-1] == "done" and len(rest) > 5
    assert rest[-1]["generator"] == "openai:fake" and rest[-1]["partial"] is False


def test_failing_llm_falls_back_to_extractive_and_is_partial(engine, docs, fake):
    engine.ingest(docs)
    fake.mode = "always_500"
    g = OpenAICompatGenerator(fake.url, "fake", retries=1, backoff=0.01)
    answer = engine.ask("when do I replace the pump seal?", k=2, generator=g)
    assert answer.partial and answer.generator == "extractive"
    assert "HTTP 500" in answer.errors[0]
    # the composer's weights are fitted for MiniLM; with the hashing encoder the seal sentence
    # is quoted, not necessarily first
    assert answer.citations and "Replace the mechanical seal" in answer.answer
    events = list(engine.ask_stream("when do I replace the pump seal?", k=2, generator=g))
    assert events[-1]["partial"] is True and events[-1]["generator"] == "extractive"


def test_llm_failing_mid_stream_keeps_the_tokens_and_is_partial(engine, docs, fake):
    engine.ingest(docs)
    fake.mode, fake.delay = "slow_stream", 1.0
    g = OpenAICompatGenerator(fake.url, "fake", retries=2, timeout=0.3)
    events = list(engine.ask_stream("when do I replace the pump seal?", k=2, generator=g))
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert tokens == ["Replace "] and len(fake.requests) == 1  # no retry after a token
    assert events[-1]["partial"] is True and events[-1]["generator"] == "openai:fake"
    assert events[-1]["answer"] == "Replace"


def test_answer_to_dict_matches_the_contract(engine, docs):
    engine.ingest(docs)
    data = engine.ask("what does alarm E-107 mean?", k=3).to_dict()
    assert set(data) == CONTRACT_KEYS
    assert set(data["timings_ms"]) == {"retrieve", "rerank", "generate", "total"}
    assert data["generator"] == "extractive" and data["partial"] is False
    assert data["sources"][0]["text"].startswith("Alarm E-107")
    assert json.loads(json.dumps(data)) == data


# ------------------------------------------------------------------------------ CLI
@pytest.fixture
def collection(tmp_path, docs):
    db = tmp_path / "kb"
    result = CliRunner().invoke(
        main, ["ingest", str(docs), "--db", str(db), "--encoder", "hash", "--backend", "flat"]
    )
    assert result.exit_code == 0, result.output
    return db


def test_cli_ask_json(collection):
    result = CliRunner().invoke(
        main, ["ask", "what does alarm E-107 mean?", "--db", str(collection), "-k", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == CONTRACT_KEYS and data["citations"][0]["source"].endswith("alarms.txt")


def test_cli_ask_streams_with_an_llm(collection, fake):
    result = CliRunner().invoke(
        main,
        [
            "ask",
            "when do I replace the pump seal?",
            "--db",
            str(collection),
            "--llm",
            fake.url,
            "--model",
            "fake",
            "--filter",
            "modality=text",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Replace the mechanical seal")
    assert "Sources:" in result.output and " *[1] pump.md" in result.output


def test_cli_ask_bad_options(collection, monkeypatch):
    runner = CliRunner()
    monkeypatch.delenv("EDGERAG_NO_SUCH_KEY", raising=False)
    cases = [
        (["--llm", "http://127.0.0.1:9"], "--llm needs --model"),
        (
            ["--llm", "http://x", "--model", "m", "--api-key-env", "EDGERAG_NO_SUCH_KEY"],
            "EDGERAG_NO_SUCH_KEY is not set",
        ),
        (["--llm", "ftp://x", "--model", "m"], "must start with http"),
        (["--filter", "nokeyvalue"], "not KEY=VALUE"),
    ]
    for extra, message in cases:
        result = runner.invoke(main, ["ask", "seal", "--db", str(collection), *extra])
        assert result.exit_code != 0 and message in result.output, (extra, result.output)
    result = runner.invoke(main, ["ask", "--db", str(collection)])
    assert result.exit_code == 2 and "give a QUERY" in result.output
    result = runner.invoke(main, ["ask", "seal", "--db", str(collection / "missing")])
    assert result.exit_code == 1 and "no edgerag collection" in result.output


def test_sentence_split_used_for_gold_is_the_answerers():
    assert bench.split_sentences is split_sentences
