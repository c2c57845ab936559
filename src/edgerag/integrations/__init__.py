"""Adapters that put edgerag inside other frameworks.

* :mod:`edgerag.integrations.langchain` — ``EdgeragRetriever``, a LangChain ``BaseRetriever``
  (extra ``langchain``).
* :mod:`edgerag.integrations.llama_index` — ``EdgeragRetriever``, a LlamaIndex ``BaseRetriever``
  (extra ``llamaindex``).

Each module imports its framework on import and fails naming the extra when it is missing;
``import edgerag`` never imports them.
"""
