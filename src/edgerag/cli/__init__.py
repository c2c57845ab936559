"""The ``edgerag`` command: a thin shell over the library.

Library errors become one clear line on stderr and a non-zero exit, translated here only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from edgerag.crypto import EncryptionKeyError
from edgerag.errors import ConfigError, EdgeRagError, NotFoundError


class _KeyProblem(click.ClickException):
    """A missing or wrong collection key: one line, exit 2 (no usage text: the command was
    right, the key was not)."""

    exit_code = 2


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EncryptionKeyError as exc:
            raise _KeyProblem(str(exc)) from exc
        except NotFoundError as exc:
            raise click.ClickException(f"not found: {exc}") from exc
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
        except EdgeRagError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.version_option(package_name="edgerag")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """edgerag: edge-first multimodal RAG on one small CPU box."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


from edgerag.cli import ask, bench, check, core, demo, documents, fleet, mcp, serve  # noqa: E402,F401  (registers commands)

# isort: split
from edgerag.cli import upstream  # noqa: E402,F401  (registers `edgerag upstream`)

# isort: split
# registers init, new-key, rotate-key; erasure-report
from edgerag.cli import crypt, privacy  # noqa: E402,F401
