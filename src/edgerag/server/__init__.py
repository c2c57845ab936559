"""The HTTP service (``pip install 'edgerag[server]'``): ``create_app`` + ``edgerag serve``."""

from __future__ import annotations

from edgerag.server.app import create_app
from edgerag.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
