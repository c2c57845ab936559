"""``edgerag init`` (a new collection, optionally encrypted), ``new-key`` and ``rotate-key``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edgerag import crypto
from edgerag.cli import main
from edgerag.cli.core import DB, _merge_config
from edgerag.config import ENCODERS
from edgerag.engine import Engine
from edgerag.errors import ConfigError


@main.command()
@DB
@click.option("--encrypt", is_flag=True, help="Encrypt the collection at rest (needs the key).")
@click.option(
    "--scrub-pii",
    is_flag=True,
    help="Redact e-mails, phones, IBANs, cards, national ids and cued names at every ingest.",
)
@click.option(
    "--pii-regions",
    default=None,
    help="Comma-separated countries whose national phone formats are recognised "
    "(default US,GB,DE,NL,FR,ES,IT).",
)
@click.option(
    "--encoder",
    type=click.Choice(list(ENCODERS)),
    default=None,
    help="Text encoder (default minilm; minilm-q8 ingests ~2.5x faster, see the README).",
)
@click.option("--backend", type=click.Choice(["flat", "faiss", "usearch"]), default=None)
@click.option("--quantization", type=click.Choice(["f32", "f16", "int8", "binary"]), default=None)
def init(
    db: Path,
    encrypt: bool,
    scrub_pii: bool,
    pii_regions: str | None,
    encoder: str | None,
    backend: str | None,
    quantization: str | None,
) -> None:
    """Create an empty collection with these settings (stored in its config.json).

    The key of --encrypt comes from --key-file or $EDGERAG_KEY and is never stored."""
    if (db / "store.db").exists():
        raise ConfigError(f"{db} already holds a collection; settings apply to a new one")
    regions = None
    if pii_regions:
        regions = [r.strip().upper() for r in pii_regions.split(",") if r.strip()]
    if scrub_pii:
        from edgerag.privacy.pii import Detector

        Detector()  # fail now, naming the missing `privacy` extra, not at the first ingest
    config = _merge_config(
        None,
        encoder=encoder,
        backend=backend,
        quantization=quantization,
        encrypt=encrypt,
        scrub_pii=scrub_pii,
        pii_regions=regions,
    )
    Engine.open(db, config).close()
    kind = "encrypted collection" if encrypt else "collection"
    click.echo(f"created {kind} {db} (scrub_pii={'on' if scrub_pii else 'off'})")


@main.command("new-key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def new_key(path: Path) -> None:
    """Write a fresh random collection key (base64) to PATH, readable by its owner only."""
    if path.exists():
        raise click.ClickException(f"{path}: exists; not overwriting a key")
    crypto.write_key_file(path, crypto.new_key())
    click.echo(f"wrote a new key to {path} (mode 0600); keep a copy: without it the data is lost")


@main.command("rotate-key")
@DB
@click.option(
    "--new-key-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The new key (base64, mode 0600).",
)
def rotate_key(db: Path, new_key_file: Path) -> None:
    """Re-encrypt an encrypted collection under a new key while other processes keep reading.

    The current key comes from --key-file or $EDGERAG_KEY. With a key file, that file then
    holds the new key, and processes reading the collection through it switch over by
    themselves; processes given $EDGERAG_KEY must be restarted with the new key.
    """
    from edgerag.cli.core import require_collection

    require_collection(db)
    if not crypto.collection_encrypted(db):
        raise click.ClickException(f"{db}: not an encrypted collection (nothing to rotate)")
    old = crypto.require_key(db, None)
    new = crypto.read_key_file(new_key_file)
    if new == old:
        raise click.ClickException(f"{new_key_file}: is the current key")
    resealed = crypto.rotate_collection_key(db, old, new)
    click.echo(f"{db}: store re-encrypted, {resealed} sealed files re-sealed under the new key")
    key_file = os.environ.get(crypto.KEY_FILE_ENV)
    if key_file and not os.environ.get(crypto.KEY_ENV):
        crypto.write_key_file(Path(key_file), new)
        click.echo(f"{key_file} now holds the new key (readers using it follow)")
    else:
        click.echo(f"set {crypto.KEY_ENV} to the new key and restart the processes that use it")
