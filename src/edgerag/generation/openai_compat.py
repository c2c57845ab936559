"""Any OpenAI-compatible chat endpoint (llama.cpp server, Ollama, vLLM, OpenAI) over httpx.

Plain httpx, no vendor SDK. Streaming uses server-sent events (``stream: true``). Transport
errors, timeouts, HTTP errors and malformed replies are translated to
:class:`~edgerag.errors.UpstreamError` here and nowhere else. Transient failures (connect
errors, timeouts, HTTP 429/5xx) are retried with exponential backoff; a stream is only retried
before its first token, never after part of an answer was delivered.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from edgerag._optional import require
from edgerag.errors import ConfigError, MissingExtraError, UpstreamError
from edgerag.generation.base import Generator
from edgerag.generation.prompts import Prompt

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def chat_url(base_url: str) -> str:
    """``http://host:8080`` / ``…/v1`` / ``…/v1/chat/completions`` → the chat completions URL."""
    url = base_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"LLM URL {base_url!r} must start with http:// or https://")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


class _Retry(Exception):
    """Internal: a transient failure worth another attempt (carries the mapped error)."""

    def __init__(self, error: UpstreamError) -> None:
        self.error = error


class OpenAICompatGenerator(Generator):
    """Chat completions from an OpenAI-compatible server.

    Args:
        base_url: server root, ``…/v1`` or the full ``…/v1/chat/completions`` URL.
        model: model name sent in the request (shown as ``openai:<model>``).
        api_key: sent as ``Authorization: Bearer``; never read from the environment here.
        timeout: seconds to wait for the reply (non-streaming) or between two stream chunks.
        connect_timeout: seconds to establish the connection.
        retries: extra attempts after a transient failure.
        backoff: first backoff delay in seconds, doubled per attempt.
        temperature / max_tokens: sampling options sent with every request.
        transport: an httpx transport (tests, proxies).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
        temperature: float = 0.1,
        max_tokens: int = 512,
        transport: Any | None = None,
    ) -> None:
        try:
            httpx = require("httpx")
        except MissingExtraError as exc:
            raise MissingExtraError("httpx", "llm", "OpenAI-compatible LLM endpoints") from exc
        if not model:
            raise ConfigError("an OpenAI-compatible endpoint needs a model name (--model)")
        if retries < 0 or timeout <= 0:
            raise ConfigError("retries must be >= 0 and timeout > 0")
        self._httpx = httpx
        self.url = chat_url(base_url)
        self.model = model
        self.name = f"openai:{model}"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.temperature = temperature
        self.max_tokens = max_tokens
        headers = {"Accept": "application/json, text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            headers=headers,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _body(self, prompt: Prompt, stream: bool) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": prompt.messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": stream,
        }

    # ------------------------------------------------------------------------- errors
    def _transport_error(self, exc: Exception) -> UpstreamError:
        """The one place httpx exceptions become ours."""
        if isinstance(exc, self._httpx.TimeoutException):
            kind = type(exc).__name__.replace("Timeout", "").lower() or "request"
            return UpstreamError(f"LLM endpoint {self.url} timed out ({kind}, {self.timeout:g}s)")
        return UpstreamError(f"LLM endpoint {self.url} unreachable: {type(exc).__name__}: {exc}")

    def _status_error(self, response: Any) -> UpstreamError | _Retry:
        body = " ".join(response.text.split())[:200]
        error = UpstreamError(
            f"LLM endpoint {self.url} returned HTTP {response.status_code}: {body}"
        )
        return _Retry(error) if response.status_code in RETRY_STATUS else error

    def _attempts(self) -> Iterator[int]:
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning("retrying %s in %.2fs (attempt %d)", self.url, delay, attempt + 1)
                time.sleep(delay)
            yield attempt

    def _exhausted(self, last: UpstreamError | None) -> UpstreamError:
        tries = self.retries + 1
        return UpstreamError(f"{last} (gave up after {tries} attempt{'s' * (tries > 1)})")

    # ------------------------------------------------------------------------- generate
    def generate(self, prompt: Prompt) -> str:
        body = self._body(prompt, stream=False)
        last: UpstreamError | None = None
        for _ in self._attempts():
            try:
                response = self._client.post(self.url, json=body)
            except self._httpx.HTTPError as exc:
                last = self._transport_error(exc)
                continue
            if response.status_code >= 400:
                outcome = self._status_error(response)
                if isinstance(outcome, UpstreamError):
                    raise outcome
                last = outcome.error
                continue
            return self._message(response)
        raise self._exhausted(last)

    def _message(self, response: Any) -> str:
        try:
            data = response.json()
        except ValueError as exc:
            snippet = " ".join(response.text.split())[:120]
            raise UpstreamError(
                f"LLM endpoint {self.url} returned malformed JSON: {exc}: {snippet!r}"
            ) from exc
        return _content(data, self.url, "message")

    # ------------------------------------------------------------------------- stream
    def stream(self, prompt: Prompt) -> Iterator[str]:
        body = self._body(prompt, stream=True)
        last: UpstreamError | None = None
        for _ in self._attempts():
            delivered = False
            try:
                with self._client.stream("POST", self.url, json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                        outcome = self._status_error(response)
                        if isinstance(outcome, UpstreamError):
                            raise outcome
                        last = outcome.error
                        continue
                    for piece in self._events(response):
                        delivered = True
                        yield piece
                    return
            except self._httpx.HTTPError as exc:
                error = self._transport_error(exc)
                if delivered:  # part of the answer is out: retrying would repeat it
                    raise UpstreamError(f"{error} in the middle of the answer") from exc
                last = error
        raise self._exhausted(last)

    def _events(self, response: Any) -> Iterator[str]:
        """Parse the SSE stream; tolerate servers that ignore ``stream`` and send plain JSON."""
        if "application/json" in response.headers.get("content-type", ""):
            response.read()
            yield self._message(response)
            return
        data: list[str] = []
        finished = False
        for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
                continue
            if line.strip() or not data:  # comments, event:/id:/retry: fields, keep-alives
                continue
            payload, data = "\n".join(data), []
            if payload.strip() == "[DONE]":
                return
            chunk = self._parse_event(payload)
            finished = finished or _finish_reason(chunk) is not None
            piece = _content(chunk, self.url, "delta")
            if piece:
                yield piece
        if data and "\n".join(data).strip() == "[DONE]":
            return
        if not finished:
            raise UpstreamError(f"LLM endpoint {self.url} closed the stream before [DONE]")

    def _parse_event(self, payload: str) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise UpstreamError(
                f"LLM endpoint {self.url} sent a malformed SSE event: {exc}: {payload[:120]!r}"
            ) from exc
        if not isinstance(chunk, dict):
            raise UpstreamError(
                f"LLM endpoint {self.url} sent a non-object SSE event: {payload[:120]!r}"
            )
        return chunk


def _finish_reason(chunk: dict[str, Any]) -> Any:
    choices = chunk.get("choices") or [{}]
    return choices[0].get("finish_reason") if isinstance(choices[0], dict) else None


def _content(data: Any, url: str, field: str) -> str:
    """``choices[0].message.content`` (or ``.delta.content`` in a stream chunk)."""
    if isinstance(data, dict) and data.get("error"):
        raise UpstreamError(f"LLM endpoint {url} reported an error: {str(data['error'])[:200]}")
    try:
        choices = data["choices"]
        if field == "delta" and not choices:  # usage-only chunks carry no choice
            return ""
        content = choices[0][field].get("content")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise UpstreamError(
            f"LLM endpoint {url} sent a reply without choices[0].{field}.content: "
            f"{json.dumps(data)[:160]}"
        ) from exc
    if content is not None and not isinstance(content, str):
        raise UpstreamError(f"LLM endpoint {url} sent non-text content: {content!r:.80}")
    return content or ""
