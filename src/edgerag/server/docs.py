"""Interactive API docs at ``/docs``, served from this machine.

FastAPI's default page loads Swagger UI from a CDN, so on an offline edge box ``/docs`` is blank.
Here its files come from the ``swagger-ui-bundle-v2`` wheel (Swagger UI 5, which reads OpenAPI
3.1) and are served under ``/docs-assets``. ReDoc (also CDN-only) is off.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

DOCS_ASSETS = "/docs-assets"


def swagger_ui_dir() -> Path | None:
    """Directory of the packaged Swagger UI dist files, or ``None`` when not installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(swagger_ui_path)
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` backed by local assets (the app must be built with ``docs_url=None``)."""
    assets = swagger_ui_dir()
    if assets is None:
        logger.warning(
            "swagger-ui-bundle-v2 is not installed: /docs loads Swagger UI from a CDN "
            "(install `edgerag[server]` for offline docs)"
        )
        urls = {}
    else:
        app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
        urls = {
            "swagger_js_url": f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            "swagger_css_url": f"{DOCS_ASSETS}/swagger-ui.css",
            "swagger_favicon_url": f"{DOCS_ASSETS}/favicon-32x32.png",
        }

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API", **urls
        )

    app.add_api_route("/docs", docs, include_in_schema=False, response_class=HTMLResponse)
