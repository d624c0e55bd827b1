"""`/v1/tenants/{tenant_id}/knowledge/…`: sources, jobs, chunks, search, quality check."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
    merge_responses,
)
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from parley.kit.runtime import RuntimeDep
from parley.knowledge import service
from parley.knowledge.schemas import (
    ChunkOut,
    JobOut,
    QualityCheckIn,
    QualityCheckOut,
    SearchIn,
    SearchOut,
    SourceAccepted,
    SourceIn,
    SourceOut,
)

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/knowledge",
    tags=["knowledge"],
    responses=merge_responses(NotFound, Forbidden),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "bots:read")]
Writer = Annotated[TenantScope, tenant_access("editor", "knowledge:write")]

_SOURCE_IN: TypeAdapter[Any] = TypeAdapter(SourceIn)

_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _SOURCE_IN.json_schema(ref_template="#/components/schemas/{model}")
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "title": {"type": "string", "maxLength": 300},
                    },
                }
            },
        },
    }
}


class UnsupportedBody(Unprocessable):
    status = 415
    code = "unsupported_media_type"
    title = "Send JSON or multipart/form-data"


@router.post(
    "/sources",
    response_model=SourceAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Add a source (JSON: text, url or faq; multipart: a file) and start its ingestion",
    responses=merge_responses(Unprocessable, UnsupportedBody),
    openapi_extra=_CREATE_BODY,
)
async def create_source(scope: Writer, runtime: RuntimeDep, request: Request) -> SourceAccepted:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RequestValidationError(
                [{"loc": ("body", "file"), "msg": "A file is required.", "type": "missing"}]
            )
        title = form.get("title")
        data = await upload.read()
        return await service.upload_source(
            scope.session,
            runtime,
            scope.tenant_id,
            scope.principal,
            data=data,
            filename=upload.filename,
            content_type=upload.content_type,
            title=title if isinstance(title, str) else None,
        )
    if not content_type.startswith("application/json"):
        raise UnsupportedBody("Use application/json for text, url and faq sources.")
    try:
        body = _SOURCE_IN.validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
    return await service.create_source(
        scope.session, runtime, scope.tenant_id, scope.principal, body
    )


@router.get("/sources", response_model=Page[SourceOut], summary="List sources")
async def list_sources(
    scope: Reader,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[SourceOut]:
    return await service.list_sources(scope.session, scope.tenant_id, cursor, limit)


@router.get("/sources/{source_id}", response_model=SourceOut, summary="Get a source")
async def get_source(scope: Reader, source_id: uuid.UUID) -> SourceOut:
    return await service.get_source(scope.session, scope.tenant_id, source_id)


@router.get(
    "/sources/{source_id}/chunks",
    response_model=Page[ChunkOut],
    summary="The chunks of a source's active index version, in order (cursor-paged)",
)
async def list_chunks(
    scope: Reader,
    source_id: uuid.UUID,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[ChunkOut]:
    return await service.list_chunks(
        scope.session, scope.tenant_id, source_id, cursor=cursor, limit=limit
    )


@router.post(
    "/sources/{source_id}/reindex",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Build a new index version (the current one serves until it is complete)",
    responses=merge_responses(Conflict),
)
async def reindex_source(scope: Writer, source_id: uuid.UUID) -> JobOut:
    return await service.reindex(scope.session, scope.tenant_id, scope.principal, source_id)


@router.post(
    "/sources/{source_id}/restore",
    response_model=SourceOut,
    summary="Restore the previous index version",
    responses=merge_responses(Conflict),
)
async def restore_source(scope: Writer, runtime: RuntimeDep, source_id: uuid.UUID) -> SourceOut:
    return await service.restore_previous(
        scope.session, runtime, scope.tenant_id, scope.principal, source_id
    )


@router.delete(
    "/sources/{source_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a source with its chunks, vectors and file",
)
async def delete_source(scope: Writer, runtime: RuntimeDep, source_id: uuid.UUID) -> Response:
    await service.delete_source(scope.session, runtime, scope.tenant_id, scope.principal, source_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="An ingestion job's status")
async def get_job(scope: Reader, job_id: uuid.UUID) -> JobOut:
    return await service.get_job(scope.session, scope.tenant_id, job_id)


@router.post(
    "/search",
    response_model=SearchOut,
    summary="Search the knowledge base exactly as the bots do",
)
async def search(scope: Reader, runtime: RuntimeDep, body: SearchIn) -> SearchOut:
    return await service.search(scope.session, runtime, scope.tenant_id, body)


@router.post(
    "/quality-check",
    response_model=QualityCheckOut,
    summary="Run sample questions; report what was found and which found nothing relevant",
)
async def quality_check(
    scope: Reader, runtime: RuntimeDep, body: QualityCheckIn
) -> QualityCheckOut:
    return await service.quality_check(scope.session, runtime, scope.tenant_id, body)
