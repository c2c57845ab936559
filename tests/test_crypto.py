"""Encryption at rest (issue 13 part 1): SQLCipher store, sealed files, keys, rotation.

Real SQLCipher (sqlcipher3), real processes for the CLI and the rotation reader; the hash
encoder keeps it fast (equality with a plain collection does not depend on the encoder).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bytescan import files_in, scan_dir_for
from edgerag import Engine, EngineConfig, IndexConfig, crypto
from test_server_process import edgerag_cmd

pytest.importorskip("sqlcipher3")

READER = Path(__file__).with_name("crypto_reader.py")
SECRET = "Quuxly valve QV-9931 on the zanzibar skid leaks glycol when the rotor drifts"
DOCS = {
    "secret.txt": SECRET + ". Tighten the gland to 31 Nm.\n",
    "pump.md": "# Pump seal\n\nReplace the mechanical seal when the pump leaks at the shaft.\n",
    "alarms.txt": "Alarm E-107 means the discharge pressure is above the trip limit.\n",
    "grease.txt": "Replace the bearing grease every 2000 operating hours with NLGI 2 grease.\n",
}
QUERIES = ["zanzibar glycol leak", "pump seal", "E-107 discharge pressure", "bearing grease"]


def config(encrypt: bool) -> EngineConfig:
    index = IndexConfig(backend="faiss", quantization="int8")
    return EngineConfig(encoder="hash", index=index, encrypt=encrypt, checkpoint_ops=1)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text)
    return d


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "kb.key"
    crypto.write_key_file(path, crypto.new_key())
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGERAG_KEY")}
    return subprocess.run(
        edgerag_cmd(*args),
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, **(env or {})},
    )


def ranked(engine: Engine) -> list[list[tuple[str, float]]]:
    out = []
    for q in QUERIES:
        hits = engine.search(q, k=4).hits
        out.append([(Path(h.source).name, round(h.score, 6)) for h in hits])
    return out


# ------------------------------------------------------------------ the crypto module


def test_sealed_bytes_are_authenticated_and_fresh_per_write() -> None:
    key = crypto.new_key()
    a, b = crypto.seal(b"torque 31 Nm", key, b"f"), crypto.seal(b"torque 31 Nm", key, b"f")
    assert a != b  # a fresh nonce per write
    assert b"torque" not in a
    assert crypto.unseal(a, key, b"f") == b"torque 31 Nm"
    flipped = bytearray(a)
    flipped[-5] ^= 1
    with pytest.raises(crypto.SealedFileError, match="authentication failed"):
        crypto.unseal(bytes(flipped), key, b"f")
    with pytest.raises(crypto.SealedFileError):
        crypto.unseal(a, crypto.new_key(), b"f")
    with pytest.raises(crypto.SealedFileError):  # moved to another file name
        crypto.unseal(a, key, b"g")


def test_key_file_must_be_private_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "k"
    crypto.write_key_file(path, crypto.new_key())
    assert (path.stat().st_mode & 0o777) == 0o600
    assert len(crypto.read_key_file(path)) == 32
    path.chmod(0o640)
    with pytest.raises(crypto.EncryptionKeyError, match="chmod 600"):
        crypto.read_key_file(path)
    path.chmod(0o600)
    path.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(crypto.EncryptionKeyError, match="5 bytes, need 32"):
        crypto.read_key_file(path)


def test_fts5_works_inside_sqlcipher(tmp_path: Path) -> None:
    key = crypto.new_key()
    conn = crypto.open_store_connection(f"file:{tmp_path / 'x.db'}", key, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(body)")
    conn.executemany("INSERT INTO t VALUES (?)", [("pump seal leak",), ("bearing grease",)])
    rows = conn.execute("SELECT body, bm25(t) FROM t WHERE t MATCH 'seal'").fetchall()
    assert [r[0] for r in rows] == ["pump seal leak"]
    conn.close()
    assert not (tmp_path / "x.db").read_bytes().startswith(b"SQLite format 3")


# ------------------------------------------------------------------ collections


def test_encrypted_collection_equals_the_plain_one(
    tmp_path: Path, corpus: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))
    with Engine.open(tmp_path / "plain", config(False)) as plain:
        plain.ingest([corpus])
        want = ranked(plain)
    with Engine.open(tmp_path / "enc", config(True)) as enc:
        enc.ingest([corpus])
        assert ranked(enc) == want
    assert want[0][0][0] == "secret.txt"
    # Reopened from the sealed checkpoint (unpacked into RAM), not rebuilt from the store.
    with monkeypatch.context() as m:
        m.setattr(Engine, "_rebuild", lambda *a: pytest.fail("rebuilt instead of restored"))
        with Engine.open(tmp_path / "enc") as reopened:
            assert reopened.store.encrypted
            assert ranked(reopened) == want
            assert reopened.stats()["documents"] == len(DOCS)
    index_files = files_in(tmp_path / "enc" / "index")
    assert index_files == [".sealed.lock", "text.sealed"]  # no plain index file on disk


def test_tampered_sealed_checkpoint_is_rebuilt_from_the_store(
    tmp_path: Path, corpus: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))
    db = tmp_path / "enc"
    with Engine.open(db, config(True)) as engine:
        engine.ingest([corpus])
        want = ranked(engine)
    sealed_file = db / "index" / "text.sealed"
    blob = bytearray(sealed_file.read_bytes())
    blob[-100] ^= 0x01
    sealed_file.write_bytes(bytes(blob))
    with Engine.open(db) as engine:  # authentication fails: rebuilt, never served
        assert ranked(engine) == want
    assert sealed_file.read_bytes() != bytes(blob)  # replaced by a good one


def test_byte_scan_of_encrypted_directory_finds_no_plaintext(
    tmp_path: Path, corpus: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))

    def ingest_and_scan(db: Path, encrypt: bool) -> tuple[dict, list[str]]:
        with Engine.open(db, config(encrypt)) as engine:
            engine.ingest([corpus])
            hit = engine.search("zanzibar glycol", k=1).hits[0]
            stored = engine.store.vectors("text", np.array([hit.key]))[1][0].astype("<f4")
            in_index = engine.indexes["text"].get_vectors([hit.key])[0].astype("<f4")
            assert np.count_nonzero(stored) > 8
            needles = [SECRET.encode(), b"QV-9931", b"zanzibar", stored.tobytes()]
            needles += [in_index.tobytes(), in_index.astype("<f2").tobytes()]
            while_open = scan_dir_for(db, needles), files_in(db)
        after_close = scan_dir_for(db, needles)
        return {**while_open[0], **after_close}, while_open[1]

    # The scan is able to fail: in a plain collection it finds the text and the vector.
    found, _ = ingest_and_scan(tmp_path / "plain", encrypt=False)
    assert b"QV-9931" in found and SECRET.encode() in found
    assert any(len(n) == 64 * 4 for n in found)  # f32: the store blob, the originals file
    found, scanned = ingest_and_scan(tmp_path / "enc", encrypt=True)
    assert "store.db-wal" in scanned  # the WAL was scanned while the engine had it open
    assert found == {}


def test_copied_encrypted_collection_needs_its_key(
    tmp_path: Path, corpus: Path, key_file: Path
) -> None:
    env = {crypto.KEY_FILE_ENV: str(key_file)}
    assert run("init", "--db", str(tmp_path / "kb"), "--encrypt", "--encoder", "hash",
               "--key-file", str(key_file)).returncode == 0  # fmt: skip
    assert run("ingest", str(corpus), "--db", str(tmp_path / "kb"), env=env).returncode == 0
    stolen = tmp_path / "stolen"
    shutil.copytree(tmp_path / "kb", stolen)
    other = tmp_path / "other.key"
    crypto.write_key_file(other, crypto.new_key())
    commands = [
        ["search", "zanzibar glycol"],
        ["ask", "what leaks glycol?"],
        ["stats"],
        ["check"],
        ["documents"],
        ["ingest", str(corpus)],
        ["delete", str(corpus / "pump.md")],
    ]
    for command in commands:
        for env_, reason in (
            ({}, "the key is missing"),
            ({crypto.KEY_FILE_ENV: str(other)}, "wrong key"),
        ):
            proc = run(*command, "--db", str(stolen), env=env_)
            assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and reason in lines[0], (command, proc.stderr)
            assert "zanzibar" not in proc.stdout.lower()
    bad = run("stats", "--db", str(stolen), env={crypto.KEY_ENV: "not-a-key"})
    assert bad.returncode == 2 and "EDGERAG_KEY: not base64" in bad.stderr
    served = run("serve", "--db", str(stolen), "--port", "0")  # refuses before listening
    assert served.returncode == 2 and served.stderr.count("\n") == 1
    assert "encrypted" in served.stderr
    found = run("search", "zanzibar glycol", "--db", str(stolen), "--json", env=env)
    assert found.returncode == 0, found.stderr
    assert Path(json.loads(found.stdout)["hits"][0]["source"]).name == "secret.txt"
    checked = run("check", "--db", str(stolen), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rotation_while_another_process_keeps_searching(
    tmp_path: Path, corpus: Path, key_file: Path
) -> None:
    db = tmp_path / "kb"
    env = {crypto.KEY_FILE_ENV: str(key_file)}
    assert run("init", "--db", str(db), "--encrypt", "--encoder", "hash", env=env).returncode == 0
    assert run("ingest", str(corpus), "--db", str(db), env=env).returncode == 0
    old = crypto.read_key_file(key_file)
    new_file = tmp_path / "new.key"
    crypto.write_key_file(new_file, crypto.new_key())
    rotated, stop = str(tmp_path / "rotated"), str(tmp_path / "stop")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGERAG_KEY")}
    reader = subprocess.Popen(
        [sys.executable, str(READER), str(db), "zanzibar glycol", "secret.txt", rotated, stop],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, **env},
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "READY", reader.stderr
        time.sleep(1.0)
        done = run("rotate-key", "--db", str(db), "--new-key-file", str(new_file), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "now holds the new key" in done.stdout
        Path(rotated).touch()
        time.sleep(1.5)  # the reader keeps searching under the new key
        Path(stop).touch()
        out, err = reader.communicate(timeout=120)
    finally:
        if reader.poll() is None:
            reader.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == [], (result, err)
    assert result["searches"] > 10 and result["misses"] == 0, result
    assert result["after_rotation"] > 0, result  # it read the re-encrypted store
    assert crypto.read_key_file(key_file) == crypto.read_key_file(new_file)
    old_file = tmp_path / "old.key"
    crypto.write_key_file(old_file, old)
    refused = run("stats", "--db", str(db), "--key-file", str(old_file))
    assert refused.returncode == 2 and "wrong key" in refused.stderr
    assert run("stats", "--db", str(db), "--key-file", str(new_file)).returncode == 0


# ------------------------------------------------------------------ HTTP uploads (sealed files)


def test_uploaded_originals_are_sealed_served_and_resealed_on_rotation(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from edgerag.server import ServerSettings, create_app
    from edgerag.server.auth import KeyStore

    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))
    db = tmp_path / "kb"
    Engine.open(db, config(True)).close()
    write = {"X-API-Key": KeyStore(db).create("write", "test")[1]}
    body = DOCS["secret.txt"].encode()
    with TestClient(create_app(ServerSettings(db=db))) as client:
        r = client.post("/ingest", files={"files": ("secret.txt", body)}, headers=write)
        assert r.status_code == 200, r.text
        assert client.get("/files/secret.txt").content == body
        assert scan_dir_for(db, [b"QV-9931", b"zanzibar"]) == {}
        (sealed,) = (db / "originals").iterdir()
        assert sealed.read_bytes().startswith(crypto.SEAL_MAGIC)
        new_file = tmp_path / "new.key"
        crypto.write_key_file(new_file, crypto.new_key())
        old, new = crypto.read_key_file(key_file), crypto.read_key_file(new_file)
        assert crypto.rotate_collection_key(db, old, new) == 2  # the upload, the text index
        with pytest.raises(crypto.SealedFileError):
            crypto.read_sealed(sealed, old)
        monkeypatch.setenv(crypto.KEY_FILE_ENV, str(new_file))
        assert client.get("/files/secret.txt").content == body  # store and file, new key
        tampered = bytearray(sealed.read_bytes())
        tampered[len(tampered) // 2] ^= 0x40
        sealed.write_bytes(bytes(tampered))
    with TestClient(create_app(ServerSettings(db=db)), raise_server_exceptions=False) as client:
        r = client.get("/files/secret.txt")
        assert r.status_code == 500 and "authentication failed" in r.json()["error"]["message"]


# ------------------------------------------------------------------ fleet replicas


def test_fleet_nodes_replicate_into_encrypted_stores(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three real node processes given the key (EDGERAG_KEY_FILE) over encrypted collections:
    ops replicate, searches route, and no replica directory holds a readable document."""
    pytest.importorskip("nats")
    import asyncio

    from edgerag.fleet.ingest_stream import IngestClient
    from fleet_harness import Fleet, make_docs, wait_for

    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))
    nodes = ["n1", "n2", "n3"]
    for node in nodes:  # created encrypted; the worker's own config does not say so
        Engine.open(tmp_path / node, config(True)).close()
    docs = make_docs(12)
    docs["secret.txt"] = SECRET
    fleet = Fleet(tmp_path)

    async def scenario() -> None:
        await fleet.connect()
        try:
            await wait_for(fleet.all_serving, 30, "every replica serving")
            client = IngestClient(fleet.nc, fleet.names)
            last = 0
            for name, text in docs.items():
                result = await client.put(name, text.encode(), doc_id=name, wait=True)
                last = max(last, result["op_seq"])
            got = await fleet.router.search(SECRET, k=3, mode="dense", min_seq=last)
            assert not got.partial and got.hits[0]["doc_id"] == "secret.txt"
        finally:
            await fleet.disconnect()

    try:
        for node in nodes:
            fleet.start_node(node)
        asyncio.run(scenario())
    finally:
        fleet.close()
    holders = 0
    for node in nodes:
        assert scan_dir_for(tmp_path / node, [b"QV-9931", b"zanzibar"]) == {}
        with Engine.open(tmp_path / node) as replica:
            assert replica.store.encrypted
            holders += replica.store.document("secret.txt") is not None
    assert holders == fleet.replicas  # every replica of the document's shard has it
    monkeypatch.delenv(crypto.KEY_FILE_ENV)
    refused = run("node", "--db", str(tmp_path / "n1"), "--nats", fleet.server.url)
    assert refused.returncode == 2 and "the key is missing" in refused.stderr


def test_another_process_write_is_followed_in_an_encrypted_collection(
    tmp_path: Path, corpus: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAL and the op log across processes work through SQLCipher: a CLI ingest in another
    process is visible to this process's next search, and its checkpoint is sealed too."""
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))
    db = tmp_path / "kb"
    with Engine.open(db, config(True)) as engine:
        engine.ingest([corpus / "pump.md"])
        before = engine.search("zanzibar glycol", k=5).hits
        assert "secret.txt" not in {Path(h.source).name for h in before}
        env = {crypto.KEY_FILE_ENV: str(key_file)}
        added = run("ingest", str(corpus / "secret.txt"), "--db", str(db), env=env)
        assert added.returncode == 0, added.stderr
        hits = engine.search("zanzibar glycol", k=5).hits
        assert hits and Path(hits[0].source).name == "secret.txt"
    assert scan_dir_for(db, [b"QV-9931", b"zanzibar"]) == {}


def test_ram_copies_of_a_killed_process_are_swept(
    tmp_path: Path, corpus: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decrypted RAM index of a process killed with SIGKILL does not stay in /dev/shm: the
    next process that opens an encrypted collection removes it."""
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))
    db = tmp_path / "kb"
    with Engine.open(db, config(True)) as engine:
        engine.ingest([corpus])
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, str(READER), str(db), "pump", "pump.md", str(stop), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "READY"
    left = list(Path("/dev/shm").glob(f"edgerag-index-{reader.pid}-*"))
    assert len(left) == 1 and any(p.is_file() for p in left[0].rglob("*"))
    reader.kill()
    reader.wait(timeout=30)
    with Engine.open(db):
        assert not left[0].exists()


def test_a_flipped_byte_in_the_encrypted_store_is_a_clear_error(
    tmp_path: Path, corpus: Path, key_file: Path
) -> None:
    env = {crypto.KEY_FILE_ENV: str(key_file)}
    db = tmp_path / "kb"
    assert run("init", "--db", str(db), "--encrypt", "--encoder", "hash", env=env).returncode == 0
    assert run("ingest", str(corpus), "--db", str(db), env=env).returncode == 0
    stats = run("stats", "--db", str(db), "--json", env=env)
    assert 0 < json.loads(stats.stdout)["store_bytes"] < 10**8  # PRAGMA page_size is a str there
    store = db / "store.db"
    data = bytearray(store.read_bytes())
    pages = len(data) // 4096
    for page in sorted({1, 2, pages // 3, pages // 2, pages - 2, pages - 1}):  # not page 0
        damaged = bytearray(data)
        damaged[page * 4096 + 200] ^= 0x01
        store.write_bytes(bytes(damaged))
        proc = run("check", "--db", str(db), env=env)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().endswith("restore it from a backup or a replica")
        assert len(proc.stderr.strip().splitlines()) == 1
    store.write_bytes(bytes(data))
    assert run("check", "--db", str(db), env=env).returncode == 0
