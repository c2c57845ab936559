"""Citation previews: what the page shows when a citation is opened (read-only).

* ``GET /items/{item}/preview``: the cited item with where to look — a PDF page image and the
  boxes of the passage on it, the original audio/video with the second to start at, the image
  with the text read in it;
* ``GET /documents/{doc_id}/pages/{n}.png``: a PDF page rendered by poppler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi import Query as QueryParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from edgerag.errors import NotFoundError
from edgerag.server import pdfpages
from edgerag.server.deps import EngineDep, OriginalsDep, ReadKey, SettingsDep
from edgerag.server.errors import COMMON_RESPONSES
from edgerag.server.routes.documents import _source_file, item_key_of

router = APIRouter(responses=COMMON_RESPONSES, tags=["documents"])


def _original(doc: dict[str, Any], originals: Any, settings: Any) -> Path | None:
    return originals.get(doc["doc_id"]) or _source_file(doc, settings)


def _is_pdf(doc: dict[str, Any]) -> bool:
    return doc.get("mime") == "application/pdf" or doc["source"].lower().endswith(".pdf")


@router.get(
    "/documents/{doc_id:path}/pages/{page}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The rendered page"}},
    dependencies=[ReadKey],
    summary="A page of a PDF document rendered as PNG (poppler)",
)
async def page_png(
    doc_id: str,
    page: int,
    engine: EngineDep,
    settings: SettingsDep,
    originals: OriginalsDep,
    width: Annotated[int, QueryParam(ge=100, le=2000)] = 900,
) -> Response:
    doc = engine.document(doc_id)
    path = _original(doc, originals, settings)
    if path is None or not _is_pdf(doc):
        raise NotFoundError(f"{doc_id!r} has no PDF original to render")
    png = await run_in_threadpool(pdfpages.render_page, path, page, width)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.get(
    "/items/{item:path}/preview",
    dependencies=[ReadKey],
    summary="Where a cited item is: page image + highlight boxes, media + start second, image",
)
async def item_preview(
    item: str,
    engine: EngineDep,
    settings: SettingsDep,
    originals: OriginalsDep,
    passage: Annotated[
        str | None, QueryParam(max_length=4000, description="Text to highlight (the quote)")
    ] = None,
) -> JSONResponse:
    key = item_key_of(item)
    rows = engine.store.items([key])
    if key not in rows:
        raise NotFoundError(f"item {item} not found")
    row = rows[key]
    doc = engine.document(row["doc_id"])
    path = _original(doc, originals, settings)
    file_url = f"/files/{quote(doc['doc_id'], safe='')}" if path else None
    out: dict[str, Any] = {
        "id": row["item_id"],
        "doc_id": doc["doc_id"],
        "source": doc["source"],
        "title": doc.get("title"),
        "modality": row["modality"],
        "page": row["page"],
        "t_start": row["t_start"],
        "t_end": row["t_end"],
        "text": row["text"],
        "file": file_url,
        "kind": "text",
    }
    if path is not None and _is_pdf(doc) and row["page"]:
        boxes = await run_in_threadpool(
            pdfpages.highlight_boxes, path, row["page"], passage or row["text"]
        )
        out.update(
            kind="pdf-page",
            page_image=f"/documents/{quote(doc['doc_id'], safe='')}/pages/{row['page']}.png",
            highlights=[vars(b) for b in boxes],
        )
    elif row["modality"] in ("audio", "video") or doc["modality"] in ("audio", "video"):
        out["kind"] = "video" if doc["modality"] == "video" else "audio"
    elif row["modality"] == "image":
        out["kind"] = "image"
        out["thumbnail"] = f"/items/{quote(row['item_id'], safe='')}/thumbnail"
    return JSONResponse(out)
