"""The LangChain and LlamaIndex retrievers inside real chains, on part of the demo corpus."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from edgerag import Engine, EngineConfig
from edgerag.errors import ConfigError, NotFoundError
from edgerag.index.base import IndexConfig

langchain_core = pytest.importorskip("langchain_core", reason="extra `langchain` not installed")
llama_core = pytest.importorskip("llama_index.core", reason="extra `llamaindex` not installed")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.language_models.fake import FakeListLLM  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import PromptTemplate  # noqa: E402
from langchain_core.runnables import RunnablePassthrough  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import NodeWithScore  # noqa: E402
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters  # noqa: E402

from edgerag.integrations.langchain import EdgeragRetriever as LangChainRetriever  # noqa: E402
from edgerag.integrations.llama_index import EdgeragRetriever as LlamaRetriever  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "demo" / "corpus"
SUBSET = ["kx40-troubleshooting.md", "shift-log.txt", "service-bulletin-2026-03.html"]
QUESTION = "Why is the seal flush pressure low (E-107)?"


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three demo documents ingested with the real MiniLM encoder."""
    folder = tmp_path_factory.mktemp("corpus")
    for name in SUBSET:
        shutil.copy(CORPUS / name, folder / name)
    path = tmp_path_factory.mktemp("kb") / "kb"
    config = EngineConfig(encoder="minilm", index=IndexConfig(backend="flat", quantization="f32"))
    with Engine.open(path, config) as engine:
        report = engine.ingest(folder)
    assert report.ok and len(report.added) == 3
    return path


def format_docs(docs: list) -> str:
    return "\n\n".join(d.page_content for d in docs)


class PromptRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_llm_start(self, serialized, prompts, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.prompts.extend(prompts)


# --------------------------------------------------------------------------------- LangChain
def test_langchain_documents_carry_provenance(kb: Path) -> None:
    retriever = LangChainRetriever(db=str(kb), k=3)
    try:
        docs = retriever.invoke(QUESTION)
    finally:
        retriever.close()
    assert len(docs) == 3
    assert any("E-107" in d.page_content for d in docs)
    top = docs[0]
    assert {"source", "page", "score", "modality", "doc_id"} <= set(top.metadata)
    assert top.metadata["modality"] == "text"
    assert Path(top.metadata["source"]).name in SUBSET
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_langchain_lcel_chain_sync_and_async(kb: Path) -> None:
    """The RAG chain of LangChain's docs: retriever | format_docs → prompt → LLM → parser."""
    retriever = LangChainRetriever(db=str(kb), k=3)
    prompt = PromptTemplate.from_template(
        "Answer from the context only.\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
    )
    llm = FakeListLLM(responses=["Seal flush pressure low."] * 2)
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | prompt
        | llm
        | StrOutputParser()
    )
    recorder = PromptRecorder()
    try:
        answer = chain.invoke(QUESTION, config={"callbacks": [recorder]})
        answer_async = asyncio.run(chain.ainvoke(QUESTION, config={"callbacks": [recorder]}))
        docs_async = asyncio.run(retriever.ainvoke(QUESTION))
    finally:
        retriever.close()
    assert answer == answer_async == "Seal flush pressure low."
    # the retriever's passages are what the LLM was given, in both runs
    assert len(recorder.prompts) == 2 and recorder.prompts[0] == recorder.prompts[1]
    assert "E-107" in recorder.prompts[0] and QUESTION in recorder.prompts[0]
    assert len(docs_async) == 3 and any("E-107" in d.page_content for d in docs_async)


def test_langchain_filters_and_open_engine(kb: Path) -> None:
    with Engine.open(kb) as engine:
        retriever = LangChainRetriever(
            engine=engine, k=5, filters={"source": "*shift-log.txt"}, mode="bm25"
        )
        docs = retriever.invoke("strainer")
        retriever.close()  # not ours: the engine stays open
        assert engine.stats()["documents"] == 3
    assert docs and all(d.metadata["source"].endswith("shift-log.txt") for d in docs)


def test_langchain_bad_arguments(kb: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no edgerag collection"):
        LangChainRetriever(db=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="unknown search mode"):
        LangChainRetriever(db=str(kb), mode="fuzzy")
    with pytest.raises(ConfigError, match="exactly one of"):
        LangChainRetriever()


# -------------------------------------------------------------------------------- LlamaIndex
def test_llama_index_query_engine(kb: Path) -> None:
    """RetrieverQueryEngine.from_args(retriever, llm) as LlamaIndex documents it; MockLLM
    echoes its prompt, so the answer shows what the retriever gave the LLM."""
    retriever = LlamaRetriever(db=str(kb), similarity_top_k=3)
    try:
        query_engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
        response = query_engine.query(QUESTION)
        nodes = retriever.retrieve(QUESTION)
        nodes_async = asyncio.run(retriever.aretrieve(QUESTION))
    finally:
        retriever.close()
    assert len(response.source_nodes) == 3
    assert all(isinstance(n, NodeWithScore) for n in nodes)
    assert any("E-107" in n.node.get_content() for n in response.source_nodes)
    assert "E-107" in str(response)  # the passage reached the LLM's prompt
    top = nodes[0]
    assert top.score == pytest.approx(top.node.metadata["score"])
    assert {"source", "page", "modality"} <= set(top.node.metadata)
    assert [n.node.node_id for n in nodes_async] == [n.node.node_id for n in nodes]


def test_llama_index_metadata_filters(kb: Path) -> None:
    with Engine.open(kb) as engine:
        retriever = LlamaRetriever(
            engine=engine,
            similarity_top_k=5,
            filters=MetadataFilters(filters=[MetadataFilter(key="modality", value="text")]),
        )
        assert retriever.filters == {"modality": "text"}
        only_log = LlamaRetriever(
            engine=engine, similarity_top_k=5, filters={"source": "*shift-log.txt"}
        )
        nodes = only_log.retrieve("strainer")
    assert nodes and all(n.node.metadata["source"].endswith("shift-log.txt") for n in nodes)
    with pytest.raises(ConfigError, match="not supported"):
        LlamaRetriever(
            db=str(kb),
            filters=MetadataFilters(filters=[MetadataFilter(key="page", value=2, operator=">")]),
        )


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("edgerag.integrations.langchain", "langchain_core", "langchain"),
        ("edgerag.integrations.llama_index", "llama_index", "llamaindex"),
        ("edgerag.mcp", "mcp", "mcp"),
    ],
)
def test_missing_framework_names_its_extra(module: str, blocked: str, extra: str) -> None:
    """Without the framework, importing the adapter fails naming the pip extra."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {blocked!r} or name.startswith({blocked!r} + '.'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import {module}\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "MissingExtraError" in proc.stderr
    assert f"pip install 'edgerag[{extra}]'" in proc.stderr
