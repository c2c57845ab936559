"""Answer benchmark: query → ranked, cited context with the extractive answerer at 100k items.

The collection is built once from real text (DATA.md) in a cache directory outside the repo
and reused: every perlfaq answer (Debian perl-doc) and every Zaragoza construction FAQ answer
(PyPI zaragoza-construction-faq) as documents, padded to ``--n`` items with WordNet glosses
(Debian wordnet-base). Then every Q/A question is asked with the result cache off:

* latency p50/p95 per stage (encode, search, rerank, answer = prompt + extractive) and total;
* answer quality per set: the answer contains the gold (first answer sentence; for the kx40
  table/code set of benchmarks/data/kx40_table_qa.jsonl, asked against the demo corpus, the
  gold fact), cites a relevant source, says "not found";
* retrieval R@1 per set of each signal alone (dense, BM25, entity), RRF and the fitted fusion;
* with an LLM (``--llm URL --model NAME``; else the local fake OpenAI server from the tests,
  labelled as such): time to first token and tokens/s, separately.

    python benchmarks/answer_bench.py --n 100000
    python benchmarks/answer_bench.py --n 0 --no-llm     # quality without padding (faster)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgerag.bench.stats import percentile as pct
from edgerag.generation.extractive import split_sentences

PERLFAQ_DIR = Path("/usr/share/perl/5.36/pod")
_POD_CODE = re.compile(r"[A-Z]<(?:<+\s(.*?)\s>+|([^<>]*))>", re.S)


@dataclass
class QA:
    """One real question with its gold answer passage and gold (first) answer sentence."""

    set: str
    name: str  # the answer document's name (= its doc_id when ingested as (name, bytes))
    question: str
    answer: str
    gold: str


def pod_to_text(pod: str) -> str:
    """POD body → plain text: formatting codes unwrapped, directives dropped."""
    lines = []
    for line in pod.splitlines():
        if line.startswith("=item"):
            line = line[5:].strip()
        elif line.startswith("="):
            continue
        lines.append(line)
    text = "\n".join(lines)
    for _ in range(4):  # nested codes: C<L<...>>
        text = _POD_CODE.sub(_pod_code, text)
    return text.strip()


def _pod_code(match: re.Match[str]) -> str:
    kind = match.group(0)[0]
    inner = match.group(1) if match.group(1) is not None else match.group(2)
    if kind == "E":
        return {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}.get(inner, inner)
    if kind in "XZ":
        return ""
    if kind == "L":
        return inner.split("|", 1)[0] if "|" in inner else inner.replace('/"', " ").strip('"')
    return inner


def _gold_sentence(answer: str) -> str | None:
    for paragraph in re.split(r"\n\s*\n", answer):
        if paragraph[:1].isspace() or paragraph.lstrip().startswith("(contributed"):
            continue  # code blocks and attributions are not the answer
        sentences = [s for s in split_sentences(paragraph) if len(s) >= 20]
        if sentences:
            return sentences[0]
    return None


def load_perlfaq(directory: Path = PERLFAQ_DIR) -> list[QA]:
    """perlfaq1-9 from Debian perl-doc: ``=head2`` question, body answer (306 pairs)."""
    out = []
    for n in range(1, 10):
        pod = (directory / f"perlfaq{n}.pod").read_text(encoding="utf-8", errors="replace")
        parts = re.split(r"^=head2[ \t]+(.+)$", pod, flags=re.M)
        for i in range(1, len(parts) - 1, 2):
            body = re.split(r"^=head1", parts[i + 1], flags=re.M)[0]
            answer = pod_to_text(body)
            gold = _gold_sentence(answer)
            if gold:
                name = f"perlfaq{n}/{i // 2 + 1:03d}.txt"
                out.append(QA("perlfaq", name, pod_to_text(parts[i]), answer, gold))
    return out


def load_zaragoza() -> list[QA]:
    """PyPI zaragoza-construction-faq ``data/faq-en.jsonl`` (503 pairs, CC-BY-4.0)."""
    import importlib.util

    spec = importlib.util.find_spec("zaragoza_construction_faq")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pip install zaragoza-construction-faq")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "faq-en.jsonl"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        gold = _gold_sentence(row["a"])
        if gold:
            out.append(QA("zaragoza", f"zaragoza/{row['id']}.txt", row["q"], row["a"], gold))
    return out


TABLE_SET = Path(__file__).resolve().parent / "data" / "kx40_table_qa.jsonl"
DEMO_CORPUS = Path(__file__).resolve().parents[1] / "demo" / "corpus"


def load_table_set(path: Path = TABLE_SET) -> list[QA]:
    """Table/code questions written against the demo manual: the gold is a fact (a code, part
    number, value with unit) that the answer must contain; ``name`` is the source file."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(QA("kx40-tables", row["doc"], row["question"], "", row["fact"]))
    return out


def contains_gold(answer: str, gold: str) -> bool:
    """The gold sentence appears verbatim (whitespace-normalised) in the answer."""
    return " ".join(gold.split()) in " ".join(answer.split())


def _fact_form(text: str) -> str:
    text = text.lower().replace("n.m", "n·m").replace("m3/h", "m³/h").replace("\u2009", " ")
    return " ".join(text.split())


def contains_fact(answer: str, fact: str) -> bool:
    """The gold fact appears in the answer (case, spacing and N.m/N·m, m3/m³ spelling aside)."""
    return _fact_form(fact) in _fact_form(answer)


# --------------------------------------------------------------------------- WordNet padding
WORDNET_DIR = Path("/usr/share/wordnet")


def wordnet_glosses(directory: Path = WORDNET_DIR) -> list[str]:
    """``"word, other word: gloss"`` for every synset (117,659 in WordNet 3.0)."""
    out = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (directory / f"data.{part}").read_text(encoding="utf-8").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            head, gloss = line.split("|", 1)
            fields = head.split()
            count = int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            out.append(f"{', '.join(words)}: {gloss.strip()}")
    return out


class TokenHashEncoder:
    """A cheap deterministic stand-in for MiniLM on the *padding* only (``pad="hashed"``).

    Each MiniLM wordpiece id gets a fixed pseudo-random direction; a text's vector is the
    normalised sum of its tokens' directions plus a shared offset (MiniLM's vectors share a
    common component too: unrelated texts sit at cosine ~0.1-0.3, not 0). Texts sharing words
    are near each other, so the padding is clustered like real text rather than uniform noise
    (which is the worst case for HNSW), at ~1/1000 of MiniLM's cost. Not MiniLM's space: use it
    to time the query path at 100k, never to judge the padding's ranking.
    """

    id, version, dim = "token-hash", "1", 384

    def __init__(self, seed: int = 15, offset: float = 0.6) -> None:
        from edgerag.encoders.minilm import load_tokenizer

        self._tokenizer = load_tokenizer()
        vocab = self._tokenizer.get_vocab_size()
        rng = np.random.default_rng(seed)
        table = rng.standard_normal((vocab, self.dim), dtype=np.float32)
        self._table = table / np.linalg.norm(table, axis=1, keepdims=True)
        common = rng.standard_normal(self.dim).astype(np.float32)
        self._offset = offset * common / np.linalg.norm(common)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, enc in enumerate(self._tokenizer.encode_batch(texts)):
            ids = [t for t in enc.ids if t > 103]  # [PAD]/[UNK]/[CLS]/[SEP]/[MASK] carry nothing
            v = self._table[ids].sum(axis=0) if ids else np.zeros(self.dim, np.float32)
            v = v / max(float(np.linalg.norm(v)), 1e-6) + self._offset
            out[i] = v / np.linalg.norm(v)
        return out


class _Stored:
    """``pad_enc``'s vectors under ``enc``'s id and version (what the store keeps per space)."""

    def __init__(self, enc: Any, pad_enc: Any) -> None:
        self.id, self.version, self.dim = enc.id, enc.version, enc.dim
        self._pad = pad_enc

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._pad.encode(texts)


def build_collection(directory: Path, n: int, qas: list[QA], pad: str = "minilm") -> dict[str, Any]:
    """Q/A answers as documents, then WordNet glosses (2,000 per op) up to ``n`` items.

    ``pad="hashed"``: the glosses' vectors come from :class:`TokenHashEncoder` (the Q/A answers
    and every query still go through MiniLM; the glosses' text still feeds BM25)."""
    from edgerag import Engine, EngineConfig
    from edgerag.generation.unit_vectors import encode_items
    from edgerag.ingest.documents import TEXT_SPACE
    from edgerag.store.ops import UPSERT, DocumentRecord, ItemRecord, Op, SpaceVectors
    from edgerag.types import item_key

    t0 = time.perf_counter()
    config = EngineConfig(synchronous="OFF", encoder=ENCODER)
    with Engine.open(directory, config) as engine:
        report = engine.ingest([(qa.name, qa.answer.encode()) for qa in qas])
        have = report.items
        glosses = wordnet_glosses()
        need = max(0, n - have)
        if need > len(glosses):
            raise SystemExit(f"WordNet has {len(glosses)} glosses; cannot pad to {n} items")
        enc = engine.encoder
        pad_enc = TokenHashEncoder() if pad == "hashed" else enc
        for start in range(0, need, 2000):
            texts = glosses[start : min(start + 2000, need)]
            doc_id = f"wordnet/{start // 2000:03d}"
            items = [
                ItemRecord(item_key(doc_id, i), f"{doc_id}#{i}", i, "text", t)
                for i, t in enumerate(texts)
            ]
            keys = np.array([it.key for it in items], dtype=np.int64)
            data = "\n".join(texts).encode()
            doc = DocumentRecord(
                doc_id,
                "wordnet-3.0",
                "text",
                "text/plain",
                hashlib.sha256(data).hexdigest(),
                len(data),
            )
            # stored under the space's encoder id: the engine serves one encoder per space;
            # the padding's answer units get vectors too (as an ingest would store them), or the
            # composer would encode every padding candidate at question time
            as_enc = _Stored(enc, pad_enc)
            item_vectors, units = encode_items(as_enc, items, texts, mode="separate")
            vectors = {TEXT_SPACE: SpaceVectors(enc.id, enc.version, keys, item_vectors)}
            engine.apply(Op(UPSERT, doc_id, doc, items, vectors, units=units))
            print(
                f"  wordnet {start + len(texts):,}/{need:,} ({time.perf_counter() - t0:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
        engine.checkpoint()
        items = sum(engine.stats()["items"].values())
    info = {
        "n": n,
        "items": items,
        "qa": len(qas),
        "pad": pad,
        "units": True,  # collections built before answer-unit vectors were stored lack them
        "build_s": round(time.perf_counter() - t0),
    }
    (directory / "bench.json").write_text(json.dumps(info))
    return info


def open_collection(
    cache: Path, n: int, qas: list[QA], rebuild: bool, pad: str = "minilm"
) -> tuple[Any, dict]:
    from edgerag import Engine

    name = f"answer-{n}" if pad == "minilm" else f"answer-{n}-{pad}"
    directory = cache / (name if ENCODER == "minilm" else f"{name}-{ENCODER}")
    marker = directory / "bench.json"
    info = json.loads(marker.read_text()) if marker.exists() else None
    if rebuild or info is None or info.get("qa") != len(qas) or not info.get("units"):
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
        print(f"building {directory} (once; reused afterwards)", file=sys.stderr)
        info = build_collection(directory, n, qas, pad)
    engine = Engine.open(directory, _config(directory))
    engine.cache.enabled = False  # measure the uncached path
    engine.lexical.prepare()  # BM25's index built now, not in the background of timed questions
    return engine, info


LEXICAL: str | None = None  # --lexical: the BM25 engine every collection here is opened with
ENCODER = "minilm"  # --encoder: the text encoder new bench collections are built with


def _config(directory: Path) -> Any:
    """The collection's stored config (the default for a new one) with the BM25 engine of
    ``--lexical``, else the default one (not whatever an earlier ``--lexical`` run stored)."""
    import dataclasses

    from edgerag import EngineConfig

    stored = directory / "config.json"
    config = EngineConfig.load(stored) if stored.exists() else EngineConfig(encoder=ENCODER)
    return dataclasses.replace(config, lexical=LEXICAL or EngineConfig().lexical)


def open_demo_collection(cache: Path) -> Any:
    """The demo corpus (manual PDF, troubleshooting Markdown, bulletin HTML, shift log): what
    the table/code questions are asked against. Built afresh on every run (four files, seconds):
    a reused one keeps items extracted by older code (unchanged files are skipped), which once
    gave kx40 fused R@1 0.731 instead of 0.865."""
    import shutil

    from edgerag import Engine

    directory = cache / "answer-demo"
    shutil.rmtree(directory, ignore_errors=True)
    engine = Engine.open(directory, _config(directory))
    engine.ingest([DEMO_CORPUS])
    engine.cache.enabled = False
    return engine


# --------------------------------------------------------------------------- measurements


def gold_in(qa: QA, answer: str) -> bool:
    """The set's gold check: the fact for the table/code set, the first answer sentence else."""
    return (
        contains_fact(answer, qa.gold)
        if qa.set == "kx40-tables"
        else contains_gold(answer, qa.gold)
    )


def relevant(qa: QA, row: dict[str, Any]) -> bool:
    """Retrieval relevance: the item holds the fact (table set) or is the answer's document."""
    if qa.set == "kx40-tables":
        return contains_fact(row["text"], qa.gold)
    return bool(row["doc_id"] == qa.name)


SIGNALS = ("dense", "bm25", "entity", "rrf", "fused")


def signal_top1(engine: Any, qa: QA) -> dict[str, bool]:
    """R@1 of each signal alone, of RRF and of the fitted fusion, for one question."""
    from edgerag.retrieval.fusion import default_weights, reciprocal_rank_fusion, weighted_fusion
    from edgerag.types import Query

    rankings = engine.retriever.rankings(Query(text=qa.question), 50)
    tops = {name: rankings.get(name, [])[:1] for name in ("dense", "bm25", "entity")}
    tops["rrf"] = reciprocal_rank_fusion(list(rankings.values()), limit=1)
    tops["fused"] = weighted_fusion(rankings, default_weights(), limit=1)
    rows = engine.store.items([t[0][0] for t in tops.values() if t])
    return {name: bool(t) and relevant(qa, rows[t[0][0]]) for name, t in tops.items()}


def run_extractive(runs: list[tuple[Any, list[QA]]], k: int) -> dict[str, Any]:
    """``runs``: (engine, questions asked of it). Latency is measured on every question."""
    for engine, qas in runs:
        for qa in qas[:20]:  # warm-up: page cache, onnxruntime arenas
            engine.ask(qa.question, k=k)
    stages: dict[str, list[float]] = {
        s: [] for s in ("encode", "search", "rerank", "answer", "total")
    }
    per_set: dict[str, dict[str, int]] = {}
    for engine, qas in runs:
        for qa in qas:
            engine.cache.memo.clear()  # every timed question pays for its own encode
            answer = engine.ask(qa.question, k=k)
            st = answer.stages_ms
            stages["encode"].append(st["encode"])
            stages["search"].append(st["search"])
            stages["rerank"].append(answer.timings_ms["rerank"])
            stages["answer"].append(st["prompt"] + answer.timings_ms["generate"])
            stages["total"].append(answer.timings_ms["total"])
            row = per_set.setdefault(
                qa.set, {"n": 0, "gold": 0, "doc": 0, "refused": 0, **dict.fromkeys(SIGNALS, 0)}
            )
            row["n"] += 1
            row["gold"] += gold_in(qa, answer.answer)
            row["doc"] += any(
                relevant(qa, {"doc_id": c.doc_id, "text": answer.sources[c.n - 1].text})
                for c in answer.citations
            )
            row["refused"] += answer.answer.startswith("I could not find")
            for name, ok in signal_top1(engine, qa).items():
                row[name] += ok
    return {"stages": stages, "quality": per_set}


def run_llm(engine: Any, qas: list[QA], k: int, url: str | None, model: str | None) -> dict:
    from edgerag.generation.openai_compat import OpenAICompatGenerator

    server = None
    label = f"{url} ({model})"
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from test_generation import FakeOpenAI

        server = FakeOpenAI(answer=" ".join(["token"] * 63) + " [1].", token_delay=0.0)
        url, model = server.url, "fake"
        label = "LOCAL FAKE OpenAI server (HTTP/SSE overhead only, no model)"
    generator = OpenAICompatGenerator(url, model or "", timeout=120)
    ttft, sources_ms, rates, tokens = [], [], [], []
    try:
        for qa in qas:
            engine.cache.memo.clear()  # these questions were asked above: no free encodes
            t0 = time.perf_counter()
            first = last = None
            count = 0
            for event in engine.ask_stream(qa.question, k=k, generator=generator):
                now = time.perf_counter()
                if event["type"] == "sources":
                    sources_ms.append((now - t0) * 1000)
                elif event["type"] == "token":
                    first = first or now
                    last = now
                    count += 1
            if first is None:
                continue
            ttft.append((first - t0) * 1000)
            tokens.append(count)
            if last and last > first and count > 1:
                rates.append((count - 1) / (last - first))
    finally:
        generator.close()
        if server:
            server.close()
    return {"label": label, "ttft": ttft, "sources": sources_ms, "rates": rates, "tokens": tokens}


# --------------------------------------------------------------------------- report
def print_report(info: dict, res: dict, llm: dict | None, k: int, n_q: int) -> None:
    st = res["stages"]
    print(
        f"\n### Extractive answers at {info['items']:,} items "
        f"(k={k}, {n_q} questions, result cache off)\n"
    )
    print("| stage | p50 ms | p95 ms | mean ms |")
    print("|---|---:|---:|---:|")
    for name, values in st.items():
        label = "**total (query → ranked, cited answer)**" if name == "total" else name
        print(
            f"| {label} | {pct(values, 50):.2f} | {pct(values, 95):.2f} | "
            f"{statistics.fmean(values):.2f} |"
        )
    print("\n### Answer quality and retrieval R@1 per signal\n")
    print(
        "| set | questions | answer contains gold | cites gold | said 'not found' | "
        + " | ".join(f"R@1 {s}" for s in SIGNALS)
        + " |"
    )
    print("|---|---:|---:|---:|---:|" + "---:|" * len(SIGNALS))
    keys = ("n", "gold", "doc", "refused", *SIGNALS)
    total = dict.fromkeys(keys, 0)
    for name, row in [*res["quality"].items(), ("all", total)]:
        if name != "all":
            for key in total:
                total[key] += row[key]
        n = row["n"] or 1
        cells = [f"{row[key] / n:.3f}" for key in ("gold", "doc", "refused", *SIGNALS)]
        print(f"| {name} | {row['n']} | " + " | ".join(cells) + " |")
    if llm:
        print(f"\n### Streaming with an LLM: {llm['label']}\n")
        print("| metric | p50 | p95 |")
        print("|---|---:|---:|")
        print(
            f"| sources event (ms after ask) | {pct(llm['sources'], 50):.1f} | "
            f"{pct(llm['sources'], 95):.1f} |"
        )
        print(
            f"| time to first token (ms after ask) | {pct(llm['ttft'], 50):.1f} | "
            f"{pct(llm['ttft'], 95):.1f} |"
        )
        print(
            f"| tokens/s after the first token | {pct(llm['rates'], 50):.0f} | "
            f"{pct(llm['rates'], 5):.0f} (p5) |"
        )
        print(
            f"| tokens per answer | {pct(llm['tokens'], 50):.0f} | {pct(llm['tokens'], 95):.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="items in the collection")
    parser.add_argument("--k", type=int, default=5, help="sources per answer")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/edgerag-bench")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached collection")
    parser.add_argument(
        "--limit", type=int, default=0, help="ask N perlfaq/Zaragoza questions spread evenly"
    )
    parser.add_argument("--llm", help="OpenAI-compatible URL (default: local fake server)")
    parser.add_argument("--model", help="model name for --llm")
    parser.add_argument("--llm-questions", type=int, default=20)
    parser.add_argument("--no-llm", action="store_true", help="skip the LLM section")
    parser.add_argument("--lexical", choices=("tantivy", "fts5"), help="BM25 engine to use")
    args = parser.parse_args()
    global LEXICAL
    LEXICAL = args.lexical
    qas = load_perlfaq() + load_zaragoza()
    engine, info = open_collection(args.cache_dir, args.n, qas, args.rebuild)
    print(f"collection: {info} at {args.cache_dir}", file=sys.stderr)
    questions = qas[:: max(1, len(qas) // args.limit)][: args.limit] if args.limit else qas
    table = load_table_set()
    demo = open_demo_collection(args.cache_dir)
    try:
        res = run_extractive([(engine, questions), (demo, table)], args.k)
        llm = None
        if not args.no_llm:
            spread = questions[:: max(1, len(questions) // args.llm_questions)]
            llm = run_llm(engine, spread[: args.llm_questions], args.k, args.llm, args.model)
    finally:
        engine.close()
        demo.close()
    print_report(info, res, llm, args.k, len(questions) + len(table))


if __name__ == "__main__":
    main()
