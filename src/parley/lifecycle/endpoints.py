"""`/v1/tenants/{tenant_id}/privacy/…`, `…/deletion` and `…/retention`: a visitor's data
export and erasure (owner or admin), the workspace's deletion schedule (owner) and its
retention settings (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, status

from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Forbidden, NotFound, Unprocessable, merge_responses
from parley.kit.runtime import get_runtime
from parley.lifecycle import service
from parley.lifecycle.schemas import (
    DeletionState,
    RetentionOut,
    RetentionSettings,
    VisitorErasure,
    VisitorExport,
    VisitorSelector,
)

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
