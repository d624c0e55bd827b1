"""`/v1/tenants/{tenant_id}/privacy/…`, `…/deletion`, `…/retention` and `…/exports`: a
visitor's data export and erasure (owner or admin), the workspace's deletion schedule (owner),
its retention settings (admin) and its full export (owner)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, status
from fastapi.responses import Response

from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Forbidden, NotFound, TooManyRequests, Unprocessable, merge_responses
from parley.kit.runtime import get_runtime
from parley.knowledge.storage import storage_for
from parley.lifecycle import exports, service
from parley.lifecycle.schemas import (
    DeletionState,
    RetentionOut,
    RetentionSettings,
    VisitorErasure,
    VisitorExport,
    VisitorSelector,
    WorkspaceExportList,
    WorkspaceExportOut,
)
from parley.models import WorkspaceExport

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}",
    tags=["data lifecycle"],
    responses=merge_responses(NotFound, Forbidden, Unprocessable),
)

Admin = Annotated[TenantScope, tenant_access("admin", "admin")]
Owner = Annotated[TenantScope, tenant_access("owner", "admin")]


@router.post(
    "/privacy/visitor-export",
    response_model=VisitorExport,
    summary="Export everything held about one visitor (JSON)",
)
async def export_visitor(scope: Admin, body: VisitorSelector) -> VisitorExport:
    return await service.export_visitor(scope.session, scope.tenant_id, scope.principal.actor, body)


@router.post(
    "/privacy/visitor-erasure",
    response_model=VisitorErasure,
    summary="Erase one visitor's data everywhere (the audit log keeps a tombstone)",
)
async def erase_visitor(scope: Admin, body: VisitorSelector) -> VisitorErasure:
    return await service.erase_visitor(scope.session, scope.tenant_id, scope.principal.actor, body)


@router.get("/deletion", response_model=DeletionState, summary="The workspace's deletion state")
async def deletion_state(scope: Owner) -> DeletionState:
    return await service.deletion_state(scope.session, scope.tenant_id)


@router.post(
    "/deletion",
    response_model=DeletionState,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Schedule the workspace's deletion after the grace period",
    responses=merge_responses(service.DeletionAlreadyScheduled),
)
async def schedule_deletion(scope: Owner, request: Request) -> DeletionState:
    grace = get_runtime(request).settings.parley_deletion_grace_days
    return await service.schedule_deletion(
        scope.session, scope.tenant_id, scope.principal.actor, grace, scope.principal.user_id
    )


@router.delete(
    "/deletion",
    response_model=DeletionState,
    summary="Cancel a pending deletion (during the grace period)",
    responses=merge_responses(service.NoDeletionPending),
)
async def cancel_deletion(scope: Owner) -> DeletionState:
    return await service.cancel_deletion(scope.session, scope.tenant_id, scope.principal.actor)


@router.get("/retention", response_model=RetentionOut, summary="Days each kind of data is kept")
async def get_retention(scope: Admin, request: Request) -> RetentionOut:
    settings = get_runtime(request).settings
    return await service.get_retention(scope.session, scope.tenant_id, settings)


@router.put("/retention", response_model=RetentionOut, summary="Set the days kept")
async def set_retention(scope: Admin, request: Request, body: RetentionSettings) -> RetentionOut:
    settings = get_runtime(request).settings
    return await service.set_retention(
        scope.session, scope.tenant_id, scope.principal.actor, body, settings
    )


def _export_out(tenant_id: object, row: WorkspaceExport) -> WorkspaceExportOut:
    ready = row.status == "ready"
    return WorkspaceExportOut(
        id=row.id,
        status=row.status,
        created_at=row.created_at,
        finished_at=row.finished_at,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        error=row.error,
        download_url=f"/v1/tenants/{tenant_id}/exports/{row.id}/download" if ready else None,
    )


@router.post(
    "/exports",
    response_model=WorkspaceExportOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Export the whole workspace (built by a job; poll, then download)",
    responses=merge_responses(exports.ExportInProgress, TooManyRequests),
)
async def request_export(scope: Owner) -> WorkspaceExportOut:
    row = await exports.request_export(
        scope.session, scope.tenant_id, scope.principal.actor, scope.principal.user_id
    )
    return _export_out(scope.tenant_id, row)


@router.get("/exports", response_model=WorkspaceExportList, summary="The workspace's exports")
async def list_exports(scope: Owner) -> WorkspaceExportList:
    rows = await exports.list_exports(scope.session, scope.tenant_id)
    return WorkspaceExportList(items=[_export_out(scope.tenant_id, r) for r in rows])


@router.get(
    "/exports/{export_id}",
    response_model=WorkspaceExportOut,
    summary="One export's state",
    responses=merge_responses(exports.ExportNotFound),
)
async def get_export(scope: Owner, export_id: uuid.UUID) -> WorkspaceExportOut:
    row = await exports.get_export(scope.session, scope.tenant_id, export_id)
    return _export_out(scope.tenant_id, row)


@router.get(
    "/exports/{export_id}/download",
    response_class=Response,
    summary="Download a built export (.tar.gz: manifest.json, tables/*.jsonl, files/)",
    responses={
        200: {"content": {"application/gzip": {}}},
        **merge_responses(exports.ExportNotFound, exports.ExportNotReady),
    },
)
async def download_export(scope: Owner, request: Request, export_id: uuid.UUID) -> Response:
    row = await exports.get_export(scope.session, scope.tenant_id, export_id)
    key = await exports.record_download(scope.session, scope.tenant_id, scope.principal.actor, row)
    data = await storage_for(get_runtime(request)).get(key)
    name = f"parley-workspace-{scope.tenant_id}-{row.id}.tar.gz"
    return Response(
        data,
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-SHA256": row.sha256 or "",
        },
    )
