"""The entity graph in the store: exact index, edges, one-hop ranking, delete, CLI and HTTP."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgerag import Engine, EngineConfig, IndexConfig
from edgerag.cli import main
from edgerag.errors import NotFoundError
from edgerag.store.sqlite import Store

FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))

MANUAL = """# Pump Manual

## 11 Alarm codes

| Code | Meaning | First action |
|---|---|---|
| E-107 | Seal flush pressure low | Check V-05 open |
| E-114 | Strainer dP high | Clean the basket, see DPT-110 |

## 9.4 Suction strainer

Clean the basket of the strainer when E-114 is raised. Close V-01 first.
"""
SHIFT_LOG = """Night shift 14 March. P-2B tripped on E-114 at 23:10.
Opened the P-2B strainer: a torn glove in the basket.
"""
OTHER = "Alarm E107 on the old skid was a false trip. Replaced nothing.\n"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "manual.md").write_text(MANUAL)
    (d / "shift.txt").write_text(SHIFT_LOG)
    (d / "other.txt").write_text(OTHER)
    return d


@pytest.fixture
def kb(corpus: Path, tmp_path: Path) -> Path:
    with Engine.open(tmp_path / "kb", FAST) as engine:
        assert engine.ingest(corpus).ok
    return tmp_path / "kb"


@pytest.fixture
def eng(kb: Path):
    with Engine.open(kb) as engine:
        yield engine


def texts(engine: Engine, keys: list[int]) -> list[str]:
    rows = engine.store.items(keys)
    return [rows[k]["text"] for k in keys]


def test_exact_index_meets_variants(eng: Engine) -> None:
    found = eng.store.entity_items(["E-107", "V-05", "NOPE-1"])
    assert set(found) == {"E-107", "V-05"}
    e107 = texts(eng, found["E-107"])
    assert len(e107) == 2  # the table row ("E-107") and the other log ("E107")
    assert any(t.startswith("Code E-107 · Meaning: Seal flush pressure low") for t in e107)
    assert any("E107 on the old skid" in t for t in e107)


def test_row_and_section_edges(eng: Engine) -> None:
    assert "V-05" in eng.store.entity_neighbours("E-107")  # same table row
    assert "E-107" in eng.store.entity_neighbours("V-05")  # both directions
    assert "DPT-110" in eng.store.entity_neighbours("E-114")
    assert "V-01" in eng.store.entity_neighbours("E-114")  # same section "9.4 Suction strainer"
    assert "P-2B" in eng.store.entity_neighbours("E-114")  # same text item of the shift log
    assert "V-01" not in eng.store.entity_neighbours("E-107")  # different sections, no edge


def test_entity_hits_rank_the_defining_row_first_and_hop_lower(eng: Engine) -> None:
    hits = eng.store.entity_hits("what does e107 mean?", k=10)
    assert texts(eng, [hits[0][0]])[0].startswith("Code E-107")
    # "P-2B strainer": the shift log names P-2B; one hop through E-114 reaches the manual's
    # strainer section, scored below every direct match.
    hits = eng.store.entity_hits("P-2B strainer", k=10)
    direct = set(eng.store.entity_items(["P-2B"])["P-2B"])
    scores = dict(hits)
    hop = [k for k in scores if k not in direct]
    assert direct <= set(scores) and hop
    assert max(scores[k] for k in hop) < min(scores[k] for k in direct)
    assert any("Clean the basket of the strainer" in t for t in texts(eng, hop))


def test_entity_hits_respect_filters(eng: Engine, corpus: Path) -> None:
    hits = eng.store.entity_hits("E-107", k=10, filters={"source": str(corpus / "other.txt")})
    assert texts(eng, [k for k, _ in hits]) == [OTHER.strip()]


def test_hybrid_search_carries_the_entity_score(eng: Engine) -> None:
    response = eng.search("What does alarm code E-107 mean?", k=3)
    top = response.hits[0]
    assert top.text.startswith("Code E-107") and top.scores["entity"] > 0
    assert "entity" in response.plan
    assert "entity" not in eng.search("seal flush", k=3).plan  # no entity: no extra list


def test_delete_removes_items_edges_and_orphans(eng: Engine, corpus: Path, tmp_path: Path) -> None:
    eng.delete(str((corpus / "shift.txt").resolve()))
    assert "P-2B" not in eng.store.entity_neighbours("E-114")
    assert eng.store.entity_items(["P-2B"]) == {}
    with pytest.raises(NotFoundError):
        eng.entity("P-2B")
    assert "V-01" in eng.store.entity_neighbours("E-114")  # the manual's edges stay
    eng.delete(str((corpus / "manual.md").resolve()))
    db = sqlite3.connect(tmp_path / "kb" / "store.db")
    assert db.execute("SELECT COUNT(*) FROM entity_edges").fetchone()[0] == 0
    names = {r[0] for r in db.execute("SELECT name FROM entities")}
    assert names == {"E-107"}  # only other.txt is left, naming E107
    db.close()


def test_changed_document_replaces_its_edges(eng: Engine, corpus: Path) -> None:
    (corpus / "shift.txt").write_text("Day shift. P-2A ran all day with PT-101 steady.\n")
    assert eng.ingest(corpus).ok
    assert "P-2B" not in eng.store.entity_neighbours("E-114")
    assert "PT-101" in eng.store.entity_neighbours("P-2A")


def _graph(store: Store) -> list[list[tuple]]:
    conn = store._reader
    return [
        sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
        for table in ("entities", "entity_items", "entity_edges")
    ]


def test_a_replica_derives_the_same_graph_from_the_ops(eng: Engine) -> None:
    replica = Store(None)
    for doc in eng.documents():
        replica.apply(eng.store.materialize(doc["doc_id"]))
    assert _graph(replica) == _graph(eng.store)
    replica.close()


def test_old_store_is_backfilled_on_open(corpus: Path, tmp_path: Path) -> None:
    with Engine.open(tmp_path / "kb", FAST) as engine:
        assert engine.ingest(corpus).ok
    db = sqlite3.connect(tmp_path / "kb" / "store.db")
    for table in ("entities", "entity_items", "entity_edges"):
        db.execute(f"DELETE FROM {table}")
    db.execute("INSERT INTO meta VALUES ('entities_backfill', 'pending')")
    db.commit()
    db.close()
    with Engine.open(tmp_path / "kb", FAST) as engine:
        assert "V-05" in engine.store.entity_neighbours("E-107")
        assert len(engine.store.entity_items(["E-107"])["E-107"]) == 2


def test_cli_entities(kb: Path) -> None:
    db = str(kb)
    result = CliRunner().invoke(main, ["entities", "e107", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["name"] == "E-107" and found["kind"] == "code" and found["items"] == 2
    sections = [i["section"] for d in found["documents"] for i in d["items"]]
    assert "Pump Manual › 11 Alarm codes" in sections
    assert "V-05" in [n["name"] for n in found["neighbours"]]
    text = CliRunner().invoke(main, ["entities", "E-107", "--db", db])
    assert text.exit_code == 0 and "Pump Manual › 11 Alarm codes" in text.output
    missing = CliRunner().invoke(main, ["entities", "X-999", "--db", db])
    assert missing.exit_code != 0 and "not found" in missing.output


def test_http_entities(kb: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from edgerag.server import ServerSettings, create_app

    with TestClient(create_app(ServerSettings(db=kb))) as client:
        body = client.get("/entities/e%20107").json()
        assert body["name"] == "E-107" and body["items"] == 2
        assert {d["source"].rsplit("/", 1)[-1] for d in body["documents"]} == {
            "manual.md",
            "other.txt",
        }
        r = client.get("/entities/X-999")
        assert r.status_code == 404 and "X-999" in r.json()["error"]["message"]
