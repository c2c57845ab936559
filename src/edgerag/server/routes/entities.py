"""Where an entity (alarm code, part number, tag, ...) appears: ``GET /entities/{name}``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from edgerag.server.deps import EngineDep, ReadKey
from edgerag.server.errors import COMMON_RESPONSES

router = APIRouter(responses=COMMON_RESPONSES, tags=["entities"])


class EntityItemOut(BaseModel):
    key: int
    id: str
    page: int | None = None
    section: str | None = None
    unit: str | None = None
    text: str


class EntityDocumentOut(BaseModel):
    doc_id: str
    source: str
    title: str | None = None
    items: list[EntityItemOut]


class NeighbourOut(BaseModel):
    name: str
    kind: str
    relations: list[str]
    edges: int


class EntityOut(BaseModel):
    name: str
    kind: str
    items: int
    documents: list[EntityDocumentOut]
    neighbours: list[NeighbourOut]


@router.get(
    "/entities/{name:path}",
    response_model=EntityOut,
    dependencies=[ReadKey],
    summary="Documents, items (with section) and graph neighbours of an entity, any spelling",
)
async def get_entity(name: str, engine: EngineDep) -> EntityOut:
    found = await run_in_threadpool(engine.entity, name)
    return EntityOut.model_validate(found)
