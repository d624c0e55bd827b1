"""Platform administration: the only code that reads across tenants, and only platform tables
(tenants, the job queue) — never tenant-scoped rows."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.admin.schemas import FailedJob, QueueState
from parley.audit import service as audit
from parley.kit import jobs
from parley.kit.errors import NotFound
from parley.kit.pagination import Page, after_id, page_by_id
from parley.models import Tenant
from parley.tenants import repository as tenant_repo
from parley.tenants.schemas import TenantDetail
from parley.tenants.service import bind_new_tenant, tenant_detail

log = structlog.get_logger(__name__)


class JobNotFound(NotFound):
    code = "job_not_found"
    title = "No failed job with this id"


async def list_tenants(
    session: AsyncSession, cursor: str | None, limit: int, status: str | None
) -> Page[TenantDetail]:
    rows = await tenant_repo.list_tenants(
        session, after=after_id(cursor), limit=limit + 1, status=status
    )
    return page_by_id(rows, limit, tenant_detail, lambda t: t.id)


async def _tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("No such workspace.")
    return tenant


async def set_status(
    session: AsyncSession, tenant_id: uuid.UUID, status: str, *, actor: str
) -> TenantDetail:
    before = (await _tenant(session, tenant_id)).status
    await tenant_repo.set_tenant_status(session, tenant_id, status)
    tenant = await _tenant(session, tenant_id)
    await session.refresh(tenant)
    await audit.record(
        session,
        await bind_new_tenant(session, tenant_id),
        actor=actor,
        action=f"tenant.{'suspended' if status == 'suspended' else 'reactivated'}",
        target_type="tenant",
        target_id=tenant_id,
        before={"status": before},
        after={"status": status},
    )
    log.info("admin.tenant_status", tenant_id=str(tenant_id), status=status)
    return tenant_detail(tenant)


async def set_plan(
    session: AsyncSession, tenant_id: uuid.UUID, plan: str, *, actor: str
) -> TenantDetail:
    tenant = await _tenant(session, tenant_id)
    before = tenant.plan
    tenant.plan = plan
    await session.flush()
    await audit.record(
        session,
        await bind_new_tenant(session, tenant_id),
        actor=actor,
        action="tenant.plan_changed",
        target_type="tenant",
        target_id=tenant_id,
        before={"plan": before},
        after={"plan": plan},
    )
    return tenant_detail(tenant)


async def queue_state(session: AsyncSession) -> QueueState:
    counts = await jobs.queue_counts(session)
    return QueueState(queued=counts["queued"], running=counts["picked"], failed=counts["failed"])


async def failed_jobs(session: AsyncSession, limit: int) -> list[FailedJob]:
    return [FailedJob(**row) for row in await jobs.list_failed(session, limit)]


async def requeue(session: AsyncSession, job_id: int) -> int:
    count = await jobs.requeue_failed(session, [job_id])
    if count == 0:
        raise JobNotFound()
    log.info("admin.job_requeued", job_id=job_id)
    return count
