"""A pre-imported parent that forks `edgerag upstream sync` processes on demand.

Importing qdrant-client takes seconds on a loaded 2-core box; forking from a parent that has
already imported it lets a kill -9 test run twenty sink processes in a minute. Each child runs
the real CLI entry point (``edgerag.cli.main``) in a fresh process that the test kills.

Protocol (lines): stdin ``run``/``quit``; stdout ``pid N`` when a child started, then
``exit N`` with its wait status when it ended.
"""

from __future__ import annotations

import os
import sys

import qdrant_client  # noqa: F401  (the slow import, done once)

from edgerag.cli import main


def serve(args: list[str]) -> None:
    for line in sys.stdin:
        if line.strip() != "run":
            return
        pid = os.fork()
        if pid == 0:
            try:
                main(args, prog_name="edgerag")
            finally:
                os._exit(0)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1:])
