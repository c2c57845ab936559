"""``edgerag serve`` (the HTTP service) and ``edgerag keys`` (its API keys)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from edgerag.cli import main
from edgerag.cli.core import KEY_FILE
from edgerag.errors import MissingExtraError

logger = logging.getLogger(__name__)

DB = click.option(
    "--db",
    "db",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Collection directory.",
)


@main.command()
@DB
@KEY_FILE
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Bind address; anything but loopback requires API keys for every request.",
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate: serve HTTPS.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--require-read-keys",
    is_flag=True,
    default=None,
    help="Ask for an API key on reads too (automatic beyond loopback).",
)
@click.option(
    "--create",
    is_flag=True,
    help="Create the collection if --db does not exist (otherwise a missing --db is an error).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(
    db: Path,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    require_read_keys: bool | None,
    create: bool,
    log_level: str,
) -> None:
    """Serve a collection over HTTP: API at /docs, web page at /."""
    try:
        import uvicorn

        from edgerag.server import ServerSettings, create_app
    except ImportError as exc:
        raise MissingExtraError(exc.name or "fastapi", "server", "edgerag serve") from exc
    overrides = {
        "db": db,
        "host": host,
        "port": port,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "require_read_keys": require_read_keys,
    }
    settings = _settings(ServerSettings, {k: v for k, v in overrides.items() if v is not None})
    if not create:
        from edgerag.cli.core import require_collection

        require_collection(settings.db)
    from edgerag.crypto import collection_key

    collection_key(settings.db)  # a missing or wrong key is one line here, not a startup trace
    app = create_app(settings)
    scheme = "https" if settings.tls_cert else "http"
    click.echo(f"edgerag serving {db} on {scheme}://{host}:{port} (API docs at /docs)", err=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
    )


def _settings(cls: Any, values: dict[str, Any]) -> Any:
    """Build the settings (arguments over EDGERAG_* env); a bad value is one usage line."""
    from pydantic import ValidationError

    try:
        return cls(**values)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: "
            f"{str(err['msg']).removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise click.UsageError(reasons) from exc


@main.group()
def keys() -> None:
    """Manage the API keys of a collection (stored hashed in <db>/keys.json)."""


@keys.command("create")
@DB
@click.option(
    "--scope",
    required=True,
    type=click.Choice(["read", "write", "admin"]),
    help="read < write < admin.",
)
@click.option("--name", default="", help="A label to recognise the key by.")
def keys_create(db: Path, scope: str, name: str) -> None:
    """Create a key and print it (the only time it is shown)."""
    from edgerag.server.auth import KeyStore

    record, secret = KeyStore(db).create(scope, name)
    click.echo(f"created key {record.id} ({scope}); store it now, it is not shown again:", err=True)
    click.echo(secret)


@keys.command("list")
@DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys_list(db: Path, as_json: bool) -> None:
    """List keys (ids, scopes, names; never the secrets)."""
    from edgerag.server.auth import KeyStore

    records = KeyStore(db).list()
    if as_json:
        click.echo(json.dumps([r.public() for r in records]))
        return
    for r in records:
        when = datetime.fromtimestamp(r.created, UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{r.id}  {r.scope:<5}  {when}  {r.name}")
    if not records:
        click.echo("no keys")


@keys.command("revoke")
@click.argument("key_id")
@DB
def keys_revoke(key_id: str, db: Path) -> None:
    """Revoke a key by id."""
    from edgerag.server.auth import KeyStore

    KeyStore(db).revoke(key_id)
    click.echo(f"revoked {key_id}")
