"""`/v1/admin/*`: platform administrators only."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from parley.admin import service
from parley.admin.schemas import FailedJob, PlanUpdate, QueueState, Requeued
from parley.auth.dependencies import CurrentUser, PlatformAdmin
from parley.kit.errors import Forbidden, NotFound, Unauthorized, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from parley.tenants.schemas import TenantDetail

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], responses=merge_responses(Unauthorized, Forbidden)
)


def _actor(admin: CurrentUser) -> str:
    return f"platform_admin:{admin.user_id}"


@router.get("/tenants", response_model=Page[TenantDetail], summary="List workspaces")
async def list_tenants(
    admin: PlatformAdmin,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    status: Literal["active", "suspended"] | None = None,
) -> Page[TenantDetail]:
    return await service.list_tenants(admin.session, cursor, limit, status)


@router.post(
    "/tenants/{tenant_id}/suspend",
    response_model=TenantDetail,
    summary="Suspend a workspace (its API and widget answer 403 tenant_suspended)",
    responses=merge_responses(NotFound),
)
async def suspend(admin: PlatformAdmin, tenant_id: uuid.UUID) -> TenantDetail:
    return await service.set_status(admin.session, tenant_id, "suspended", actor=_actor(admin))


@router.post(
    "/tenants/{tenant_id}/reactivate",
    response_model=TenantDetail,
    summary="Reactivate a suspended workspace",
    responses=merge_responses(NotFound),
)
async def reactivate(admin: PlatformAdmin, tenant_id: uuid.UUID) -> TenantDetail:
    return await service.set_status(admin.session, tenant_id, "active", actor=_actor(admin))


@router.patch(
    "/tenants/{tenant_id}/plan",
    response_model=TenantDetail,
    summary="Change a workspace's plan",
    responses=merge_responses(NotFound),
)
async def change_plan(admin: PlatformAdmin, tenant_id: uuid.UUID, body: PlanUpdate) -> TenantDetail:
    return await service.set_plan(admin.session, tenant_id, body.plan, actor=_actor(admin))


@router.get("/queue", response_model=QueueState, summary="Job queue depth by entrypoint")
async def queue(admin: PlatformAdmin) -> QueueState:
    return await service.queue_state(admin.session)


@router.get("/jobs/failed", response_model=list[FailedJob], summary="Jobs held after failing")
async def failed_jobs(
    admin: PlatformAdmin, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
) -> list[FailedJob]:
    return await service.failed_jobs(admin.session, limit)


@router.post(
    "/jobs/{job_id}/requeue",
    response_model=Requeued,
    summary="Run a failed job again",
    responses=merge_responses(NotFound),
)
async def requeue(admin: PlatformAdmin, job_id: int) -> Requeued:
    return Requeued(requeued=await service.requeue(admin.session, job_id))
