"""``edgerag mcp``: the collection as tools for an agent (Model Context Protocol)."""

from __future__ import annotations

from pathlib import Path

import click

from edgerag.cli import main
from edgerag.cli.core import DB, open_engine


@main.command()
@DB
@click.option(
    "--allow-write",
    is_flag=True,
    help="stdio: offer the `ingest` tool (write scope). Over HTTP the API key's scope decides.",
)
@click.option(
    "--http",
    "http",
    is_flag=True,
    help="Serve streamable HTTP at /mcp behind the collection's API keys instead of stdio.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address.")
@click.option("--port", default=8765, show_default=True, help="HTTP port.")
def mcp(db: Path, allow_write: bool, http: bool, host: str, port: int) -> None:
    """Serve search, ask, get_document (and ingest with write scope) over MCP.

    stdio by default: point an MCP client at `edgerag mcp --db DIR`.
    """
    from edgerag._optional import require

    require("mcp")
    from edgerag.mcp.server import REQUEST_SCOPE, build_server

    with open_engine(db) as engine:
        if http:
            import uvicorn

            from edgerag.mcp.http import build_http_app

            app = build_http_app(engine, db)
            click.echo(f"MCP over HTTP at http://{host}:{port}/mcp", err=True)
            uvicorn.run(app, host=host, port=port, log_level="warning")
            return
        REQUEST_SCOPE.set("write" if allow_write else "read")
        build_server(engine, offer_ingest=allow_write).run("stdio")
