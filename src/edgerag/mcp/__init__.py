"""edgerag as an MCP server (extra ``mcp``): tools ``search``, ``ask``, ``get_document`` and,
with write scope, ``ingest``. Run with ``edgerag mcp --db DIR``."""

from edgerag.mcp.server import build_server, citation_label

__all__ = ["build_server", "citation_label"]
