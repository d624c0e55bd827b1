"""Usage routes: `/v1/tenants/{tenant_id}/usage…` (the month's report as JSON or CSV, the
message visitors see over a limit), `…/channels/{channel_id}/visitor-budget`, and the platform
admin's `/v1/admin/usage` and `/v1/admin/tenants/{tenant_id}/overages`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select

from parley.auth.dependencies import PlatformAdmin, TenantScope, tenant_access
from parley.kit.errors import Forbidden, NotFound, Unauthorized, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT
from parley.models import Tenant
from parley.tenants.service import bind_new_tenant
from parley.usage import controls, reports
from parley.usage.reports import InvalidPeriod
from parley.usage.schemas import (
    PERIOD_PATTERN,
    OverageGrant,
    OverageOut,
    PlatformUsage,
    QuotaSettings,
    UsageReport,
    VisitorBudgetBody,
    VisitorBudgetOut,
)

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}",
    tags=["usage"],
    responses=merge_responses(NotFound, Forbidden),
)
admin_router = APIRouter(
    prefix="/v1/admin", tags=["admin"], responses=merge_responses(Unauthorized, Forbidden)
)

Period = Annotated[
    str | None, Query(pattern=PERIOD_PATTERN, description="Month as YYYY-MM (default: this one)")
]
Reader = Annotated[TenantScope, tenant_access("viewer", "bots:read")]
Admin = Annotated[TenantScope, tenant_access("admin", "admin")]


def _actor(scope: TenantScope) -> str:
    p = scope.principal
    return f"api_key:{p.api_key_id}" if p.kind == "api_key" else f"user:{p.user_id}"


@router.get(
    "/usage",
    response_model=UsageReport,
    summary="The month's metered usage (totals and per day) and each plan limit's standing",
    responses=merge_responses(InvalidPeriod),
)
async def usage_report(scope: Reader, period: Period = None) -> UsageReport:
    return await reports.tenant_report(scope.session, scope.tenant_id, period)


@router.get(
    "/usage.csv",
    summary="The month's metered usage as CSV (period, day, type, quantity; totals last)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def usage_csv(scope: Reader, period: Period = None) -> Response:
    report = await reports.tenant_report(scope.session, scope.tenant_id, period)
    return Response(
        reports.report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{reports.csv_name(report)}"'},
    )


@router.get(
    "/usage/settings", response_model=QuotaSettings, summary="What visitors see over a limit"
)
async def get_quota_settings(scope: Reader) -> QuotaSettings:
    return await controls.quota_settings(scope.session, scope.tenant_id)


@router.put(
    "/usage/settings", response_model=QuotaSettings, summary="Set what visitors see over a limit"
)
async def put_quota_settings(scope: Admin, body: QuotaSettings) -> QuotaSettings:
    return await controls.set_quota_settings(
        scope.session, scope.tenant_id, body, actor=_actor(scope)
    )


@router.get(
    "/channels/{channel_id}/visitor-budget",
    response_model=VisitorBudgetOut,
    summary="The channel's per-visitor daily budget",
)
async def get_visitor_budget(scope: Reader, channel_id: uuid.UUID) -> VisitorBudgetOut:
    return await controls.visitor_budget(scope.session, scope.tenant_id, channel_id)


@router.put(
    "/channels/{channel_id}/visitor-budget",
    response_model=VisitorBudgetOut,
    summary="Set the channel's per-visitor daily budget (messages, tokens; null: none)",
)
async def put_visitor_budget(
    scope: Admin, channel_id: uuid.UUID, body: VisitorBudgetBody
) -> VisitorBudgetOut:
    return await controls.set_visitor_budget(
        scope.session, scope.tenant_id, channel_id, body, actor=_actor(scope)
    )


# --- platform administrators ---------------------------------------------------------------


@admin_router.get(
    "/usage",
    response_model=PlatformUsage,
    summary="Every workspace's usage totals for a month",
    responses=merge_responses(InvalidPeriod),
)
async def platform_usage(
    admin: PlatformAdmin,
    period: Period = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = DEFAULT_LIMIT,
) -> PlatformUsage:
    return await reports.platform_usage(admin.session, period, cursor, limit)


async def _workspace(admin: PlatformAdmin, tenant_id: uuid.UUID) -> None:
    found = await admin.session.scalar(select(Tenant.id).where(Tenant.id == tenant_id))
    if found is None:
        raise NotFound("No such workspace.")


@admin_router.post(
    "/tenants/{tenant_id}/overages",
    response_model=OverageOut,
    status_code=status.HTTP_201_CREATED,
    summary="Grant a workspace a temporary overage on one limit (audited, expires)",
    responses=merge_responses(NotFound, controls.InvalidOverage),
)
async def grant_overage(
    admin: PlatformAdmin, tenant_id: uuid.UUID, body: OverageGrant
) -> OverageOut:
    await _workspace(admin, tenant_id)
    tid = await bind_new_tenant(admin.session, tenant_id)
    return await controls.grant_overage(
        admin.session,
        tid,
        body,
        admin_id=admin.user_id,
        actor=f"platform_admin:{admin.user_id}",
    )


@admin_router.get(
    "/tenants/{tenant_id}/overages",
    response_model=list[OverageOut],
    summary="A workspace's overages, newest first (expired ones included)",
    responses=merge_responses(NotFound),
)
async def list_overages(admin: PlatformAdmin, tenant_id: uuid.UUID) -> list[OverageOut]:
    await _workspace(admin, tenant_id)
    tid = await bind_new_tenant(admin.session, tenant_id)
    return await controls.overages(admin.session, tid)
