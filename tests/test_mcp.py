"""`edgerag mcp` driven by the official MCP Python SDK client, as an agent host drives it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="extra `mcp` not installed")

from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

EDGERAG = shutil.which("edgerag", path=str(Path(sys.executable).parent)) or "edgerag"
CORPUS = Path(__file__).resolve().parents[1] / "demo" / "corpus"


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """Two demo documents, hash encoder (plumbing test: the point is the protocol)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in ("kx40-troubleshooting.md", "shift-log.txt"):
        shutil.copy(CORPUS / name, folder / name)
    path = tmp_path / "kb"
    subprocess.run(
        [EDGERAG, "ingest", str(folder), "--db", str(path), "--encoder", "hash"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return path


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    if data is None:  # the same JSON also travels as text content
        data = json.loads(result.content[0].text)
    return data


async def session_run(db: Path, *extra: str, steps: Any) -> Any:
    params = StdioServerParameters(
        command=EDGERAG, args=["mcp", "--db", str(db), *extra], env=dict(os.environ)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        return init, await steps(session)


def test_stdio_read_only_tools(kb: Path) -> None:
    async def steps(session: ClientSession) -> dict[str, Any]:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        found = structured(await session.call_tool("search", {"query": "E-107 seal flush", "k": 3}))
        answer = structured(
            await session.call_tool("ask", {"question": "What does E-107 mean?", "k": 4})
        )
        doc = structured(await session.call_tool("get_document", {"id": "shift-log.txt"}))
        filtered = structured(
            await session.call_tool(
                "search",
                {"query": "strainer", "filters": {"source": "*shift-log.txt"}, "mode": "bm25"},
            )
        )
        bad = await session.call_tool("search", {"query": "x", "k": 0})
        missing = await session.call_tool("get_document", {"id": "nope.pdf"})
        refused = await session.call_tool("ingest", {"name": "a.md", "text": "hello"})
        return {
            "tools": tools,
            "found": found,
            "answer": answer,
            "doc": doc,
            "filtered": filtered,
            "bad": bad,
            "missing": missing,
            "refused": refused,
        }

    init, r = asyncio.run(session_run(kb, steps=steps))
    assert init.server_info.name == "edgerag"
    tools = r["tools"]
    assert set(tools) == {"search", "ask", "get_document"}  # no ingest without --allow-write
    schema = tools["search"].input_schema
    assert schema["required"] == ["query"]
    assert {"query", "k", "filters", "mode"} <= set(schema["properties"])

    hits = r["found"]["hits"]
    assert len(hits) == 3
    assert all(h["citation"].startswith(Path(h["source"]).name) for h in hits)
    assert any("E-107" in h["text"] for h in hits)

    answer = r["answer"]
    assert answer["answer"] and answer["citations"]
    cite = answer["citations"][0]
    assert cite["citation"] and cite["snippet"] and cite["source"].endswith((".md", ".txt"))
    assert f"[{cite['n']}]" in answer["answer"]

    doc = r["doc"]
    assert doc["source"].endswith("shift-log.txt") and doc["items"]
    assert doc["items_total"] == len(doc["items"])
    assert all(i["citation"].startswith("shift-log.txt") for i in doc["items"])

    assert r["filtered"]["hits"]
    assert all(h["source"].endswith("shift-log.txt") for h in r["filtered"]["hits"])

    assert r["bad"].is_error
    assert r["missing"].is_error and "nope.pdf" in r["missing"].content[0].text
    assert r["refused"].is_error  # unknown tool on a read-only server


def test_stdio_ingest_with_write_scope(kb: Path, tmp_path: Path) -> None:
    note = tmp_path / "pump-notes.md"
    note.write_text("# Pump P-9\n\nThe P-9 impeller is part KX-IMP-777, replaced in May.\n")

    async def steps(session: ClientSession) -> dict[str, Any]:
        tools = {t.name for t in (await session.list_tools()).tools}
        by_path = structured(await session.call_tool("ingest", {"path": str(note)}))
        by_text = structured(
            await session.call_tool(
                "ingest",
                {
                    "name": "radio.txt",
                    "text": "Valve V-77 sticks in winter; warm it first.",
                    "metadata": {"tags": ["valves"]},
                },
            )
        )
        both = await session.call_tool("ingest", {"path": str(note), "text": "x"})
        found = structured(await session.call_tool("search", {"query": "KX-IMP-777", "k": 1}))
        return {
            "tools": tools,
            "by_path": by_path,
            "by_text": by_text,
            "both": both,
            "found": found,
        }

    _, r = asyncio.run(session_run(kb, "--allow-write", steps=steps))
    assert "ingest" in r["tools"]
    assert r["by_path"]["added"] == [str(note.resolve())] and r["by_path"]["items"] >= 1
    assert r["by_text"]["added"] == ["radio.txt"]
    assert r["both"].is_error
    assert r["found"]["hits"][0]["source"].endswith("pump-notes.md")
    # what the agent wrote is in the collection for everyone else
    listed = subprocess.run(
        [EDGERAG, "documents", "--db", str(kb), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    sources = {d["source"] for d in json.loads(listed.stdout)}
    assert "radio.txt" in sources and str(note) in sources


# ------------------------------------------------------------------------- streamable HTTP
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_key(db: Path, scope: str) -> str:
    proc = subprocess.run(
        [EDGERAG, "keys", "create", "--db", str(db), "--scope", scope],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return proc.stdout.strip()


@pytest.fixture
def http_server(kb: Path):  # type: ignore[no-untyped-def]
    read_key, write_key = create_key(kb, "read"), create_key(kb, "write")
    port = free_port()
    proc = subprocess.Popen(
        [EDGERAG, "mcp", "--db", str(kb), "--http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "MCP HTTP server did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp", read_key, write_key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def http_session(url: str, key: str | None, steps: Any) -> Any:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await steps(session)


def test_http_behind_api_keys(http_server: tuple[str, str, str]) -> None:
    url, read_key, write_key = http_server
    import httpx2

    # no key, a wrong key: 401 before any MCP happens
    assert httpx2.post(url, json={}).status_code == 401
    bad = httpx2.post(url, json={}, headers={"Authorization": "Bearer erk_0000_nope"})
    assert bad.status_code == 401 and "invalid API key" in bad.text

    async def read_steps(session: ClientSession) -> Any:
        tools = {t.name for t in (await session.list_tools()).tools}
        found = structured(await session.call_tool("search", {"query": "strainer", "k": 2}))
        refused = await session.call_tool("ingest", {"name": "n.txt", "text": "Valve V-9."})
        return tools, found, refused

    tools, found, refused = asyncio.run(http_session(url, read_key, read_steps))
    assert {"search", "ask", "get_document", "ingest"} <= tools
    assert len(found["hits"]) == 2 and found["hits"][0]["citation"]
    assert refused.is_error and "write scope" in refused.content[0].text

    async def write_steps(session: ClientSession) -> Any:
        return structured(
            await session.call_tool("ingest", {"name": "n.txt", "text": "Valve V-9 is blue."})
        )

    assert asyncio.run(http_session(url, write_key, write_steps))["added"] == ["n.txt"]
