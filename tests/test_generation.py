"""Generators and prompts: a real local OpenAI-compatible HTTP server, the real tokenizer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from edgerag.errors import ConfigError, MissingExtraError, UpstreamError
from edgerag.generation import NOT_FOUND, SYSTEM_PROMPT, ExtractiveGenerator, PromptBuilder
from edgerag.generation.extractive import split_sentences
from edgerag.generation.openai_compat import OpenAICompatGenerator, chat_url
from edgerag.generation.prompts import TokenCounter
from edgerag.types import Hit

ANSWER = "Replace the mechanical seal when the pump leaks at the shaft [1]."


class FakeOpenAI:
    """A small real HTTP server speaking ``POST /v1/chat/completions`` (plain and SSE).

    ``mode`` picks its behaviour: ok, slow, slow_stream, fail_then_ok, always_500, bad_json,
    bad_sse, truncated_sse, bad_request. ``requests`` records every request body and headers.
    """

    def __init__(self, answer: str = ANSWER, delay: float = 2.0, token_delay: float = 0.0) -> None:
        self.mode = "ok"
        self.answer = answer
        self.delay = delay
        self.token_delay = token_delay
        self.failures = 2
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"body": body, "headers": dict(self.headers)})
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                fake.handle(self, body)

            def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ behaviours
    def handle(self, h: Any, body: dict[str, Any]) -> None:
        mode = self.mode
        if mode == "fail_then_ok" and len(self.requests) <= self.failures:
            return h._send(500, b'{"error": "model is loading"}')
        if mode == "always_500":
            return h._send(500, b"internal error: out of memory")
        if mode == "bad_request":
            return h._send(400, b'{"error": "unknown model"}')
        if mode == "slow":
            time.sleep(self.delay)
        if mode == "bad_json":
            return h._send(200, b'{"choices": [ {"message": ')
        if body.get("stream"):
            return self._stream(h, mode)
        reply = {
            "choices": [
                {"message": {"role": "assistant", "content": self.answer}, "finish_reason": "stop"}
            ]
        }
        h._send(200, json.dumps(reply).encode())

    def _stream(self, h: Any, mode: str) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        words = self.answer.split(" ")
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            chunk = {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
            if mode == "bad_sse" and i == 1:
                h.wfile.write(b'data: {"choices": [ {"delta\n\n')
                h.wfile.flush()
                return
            h.wfile.write(f": keep-alive\n\ndata: {json.dumps(chunk)}\n\n".encode())
            h.wfile.flush()
            if mode == "slow_stream" and i == 0:
                time.sleep(self.delay)
            if self.token_delay:
                time.sleep(self.token_delay)
        if mode == "truncated_sse":
            return
        done = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
        h.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        h.wfile.flush()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(delay=1.5)
    yield server
    server.close()


def hit(n: int, text: str, **kw: Any) -> Hit:
    base: dict[str, Any] = {
        "key": n,
        "id": f"doc{n}#0",
        "doc_id": f"doc{n}",
        "source": f"/m/doc{n}.txt",
        "modality": "text",
        "score": 1.0 / n,
        "text": text,
    }
    base.update(kw)
    return Hit(**base)


@pytest.fixture
def prompt():
    hits = [
        hit(1, "Replace the mechanical seal when the pump leaks at the shaft."),
        hit(2, "Torque the gland bolts to 25 Nm in a cross pattern."),
    ]
    return PromptBuilder().build("When do I replace the seal?", hits)


# ------------------------------------------------------------------------------ prompts
def test_prompt_has_system_line_question_and_numbered_sources(prompt):
    assert prompt.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert SYSTEM_PROMPT.startswith(
        "You are an industrial AI assistant. Use the provided documents verbatim when answering."
    )
    user = prompt.messages[1]["content"]
    assert user.startswith("Question: When do I replace the seal?")
    assert "[1] (doc1.txt)\nReplace the mechanical seal" in user
    assert "[2] (doc2.txt)\nTorque the gland bolts" in user
    assert user.index("[1]") < user.index("[2]")
    assert [h.id for h in prompt.sources] == ["doc1#0", "doc2#0"]


def test_prompt_budget_counted_with_the_real_tokenizer():
    counter = TokenCounter.default()
    assert counter.kind == "wordpiece"  # the onnx extra is installed in dev
    long = " ".join(
        f"Inspect the impeller vane number {i} for cavitation pitting." for i in range(80)
    )
    hits = [hit(i, long) for i in range(1, 8)]
    built = PromptBuilder(max_tokens=600).build("How do I inspect the impeller?", hits)
    real = counter.count(built.messages[0]["content"]) + counter.count(built.messages[1]["content"])
    assert built.tokens == real <= 600
    assert built.truncated and 1 <= len(built.sources) < 7
    assert built.messages[1]["content"].count("…") == 1  # only the last kept source is cut


def test_prompt_rejects_a_budget_the_question_alone_exceeds():
    with pytest.raises(ConfigError, match="budget"):
        PromptBuilder(max_tokens=64).build("word " * 200, [])


def test_prompt_renders_images_and_audio_as_text():
    image = hit(
        1,
        "PUMP P-101 MAX 6 BAR",
        modality="image",
        page=3,
        metadata={"labels": ["pump", "valve"], "caption": "a centrifugal pump"},
    )
    audio = hit(2, "the bearing is running hot again", modality="audio", t_start=12.0, t_end=17.0)
    user = PromptBuilder().build("what is the max pressure?", [image, audio]).messages[1]["content"]
    assert "[1] (image: doc1.txt, page 3)" in user
    assert "Labels: pump, valve" in user and "Caption: a centrifugal pump" in user
    assert "Text in the image: PUMP P-101 MAX 6 BAR" in user
    assert "[2] (audio: doc2.txt, 12.0–17.0 s)\nTranscript: the bearing is running hot" in user


def test_regex_counter_fallback_counts_words_and_punctuation():
    counter = TokenCounter(None)
    assert counter.kind == "regex"
    assert counter.count("Torque to 25 Nm, then check.") == 8
    assert counter.truncate("one two three four", 2) == "one two"


# ------------------------------------------------------------------------------ extractive
def test_split_sentences_keeps_text_verbatim():
    text = "Check the valve. Then the pressure\ntransmitter!\n\nA new paragraph e.g. this one."
    assert split_sentences(text) == [
        "Check the valve.",
        "Then the pressure transmitter!",
        "A new paragraph e.g. this one.",
    ]


def test_extractive_cites_the_supporting_sentence(prompt):
    answer = ExtractiveGenerator().generate(prompt)
    assert answer.startswith("Replace the mechanical seal when the pump leaks at the shaft. [1]")
    assert "".join(ExtractiveGenerator().stream(prompt)) == answer


def test_extractive_says_so_when_nothing_supports_an_answer():
    built = PromptBuilder().build(
        "What is the capital of Mongolia?",
        [hit(1, "Torque the gland bolts to 25 Nm in a cross pattern.")],
    )
    assert ExtractiveGenerator().generate(built) == NOT_FOUND


# ------------------------------------------------------------------------------ OpenAI client
def gen(fake: FakeOpenAI, **kw: Any) -> OpenAICompatGenerator:
    options: dict[str, Any] = {"timeout": 5.0, "retries": 2, "backoff": 0.01}
    options.update(kw)
    return OpenAICompatGenerator(fake.url, "fake-model", api_key="sk-test", **options)


def test_chat_url_forms():
    assert chat_url("http://h:8080") == "http://h:8080/v1/chat/completions"
    assert chat_url("http://h:8080/v1/") == "http://h:8080/v1/chat/completions"
    assert chat_url("https://h/v1/chat/completions") == "https://h/v1/chat/completions"
    with pytest.raises(ConfigError, match="http"):
        chat_url("h:8080")


def test_openai_generate_sends_the_prompt(fake, prompt):
    g = gen(fake)
    assert g.generate(prompt) == ANSWER
    assert g.name == "openai:fake-model"
    request = fake.requests[0]
    assert request["body"]["model"] == "fake-model" and request["body"]["stream"] is False
    assert request["body"]["messages"] == prompt.messages
    assert request["headers"]["Authorization"] == "Bearer sk-test"


def test_openai_stream_yields_sse_deltas(fake, prompt):
    pieces = list(gen(fake).stream(prompt))
    assert len(pieces) > 3 and "".join(pieces) == ANSWER
    assert fake.requests[0]["body"]["stream"] is True


def test_failing_upstream_is_retried_then_succeeds(fake, prompt):
    fake.mode = "fail_then_ok"
    assert gen(fake, retries=2).generate(prompt) == ANSWER
    assert len(fake.requests) == 3
    fake.requests.clear()
    assert "".join(gen(fake, retries=2).stream(prompt)) == ANSWER
    assert len(fake.requests) == 3


def test_failing_upstream_gives_up_with_a_clear_error(fake, prompt):
    fake.mode = "always_500"
    with pytest.raises(UpstreamError, match=r"HTTP 500: internal error.*after 3 attempts"):
        gen(fake, retries=2).generate(prompt)
    assert len(fake.requests) == 3
    with pytest.raises(UpstreamError, match="HTTP 500"):
        list(gen(fake, retries=1).stream(prompt))


def test_client_errors_are_not_retried(fake, prompt):
    fake.mode = "bad_request"
    with pytest.raises(UpstreamError, match=r"HTTP 400.*unknown model"):
        gen(fake).generate(prompt)
    assert len(fake.requests) == 1


def test_slow_upstream_times_out(fake, prompt):
    fake.mode = "slow"
    t0 = time.perf_counter()
    with pytest.raises(UpstreamError, match=r"timed out \(read, 0.3s\).*after 2 attempts"):
        gen(fake, timeout=0.3, retries=1).generate(prompt)
    assert time.perf_counter() - t0 < 1.5  # two 0.3 s waits, not the server's 1.5 s
    with pytest.raises(UpstreamError, match="timed out"):
        list(gen(fake, timeout=0.3, retries=0).stream(prompt))


def test_stream_stalling_mid_answer_is_not_retried(fake, prompt):
    fake.mode = "slow_stream"
    pieces: list[str] = []
    with pytest.raises(UpstreamError, match="in the middle of the answer"):
        for piece in gen(fake, timeout=0.3, retries=2).stream(prompt):
            pieces.append(piece)
    assert pieces == ["Replace "] and len(fake.requests) == 1


def test_malformed_json_reply(fake, prompt):
    fake.mode = "bad_json"
    with pytest.raises(UpstreamError, match="malformed JSON"):
        gen(fake).generate(prompt)


def test_malformed_sse_event(fake, prompt):
    fake.mode = "bad_sse"
    with pytest.raises(UpstreamError, match="malformed SSE event"):
        list(gen(fake).stream(prompt))


def test_stream_closed_before_done(fake, prompt):
    fake.mode = "truncated_sse"
    with pytest.raises(UpstreamError, match=r"before \[DONE\]"):
        list(gen(fake).stream(prompt))


def test_unreachable_endpoint(prompt):
    g = OpenAICompatGenerator("http://127.0.0.1:9", "m", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(UpstreamError, match="unreachable: ConnectError"):
        g.generate(prompt)


def test_reply_without_choices(fake, prompt):
    fake.answer = None  # type: ignore[assignment]  # content: null is valid, means empty
    assert gen(fake).generate(prompt) == ""


# ------------------------------------------------------------------------------ llama.cpp
def test_llamacpp_missing_extra_names_it():
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        from edgerag.generation.llamacpp import LlamaCppGenerator

        with pytest.raises(MissingExtraError, match=r"edgerag\[llamacpp\]"):
            LlamaCppGenerator("model.gguf")
    else:
        pytest.skip("llama_cpp is installed: the missing-extra path cannot be exercised")


def test_llamacpp_answers_from_a_gguf_model(prompt):
    pytest.importorskip("llama_cpp", reason="the llamacpp extra is not installed")
    import os

    path = os.environ.get("EDGERAG_TEST_GGUF")
    if not path:
        pytest.skip("set EDGERAG_TEST_GGUF to a small .gguf chat model to run this test")
    from edgerag.generation.llamacpp import LlamaCppGenerator

    g = LlamaCppGenerator(path, n_ctx=2048, max_tokens=32)
    assert g.generate(prompt).strip()
    assert "".join(g.stream(prompt)).strip()
