"""Use cases of the data lifecycle: a visitor's export and erasure, a workspace's deletion
schedule, its retention settings. Services never commit; the request or job does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.kit.db import TenantId
from parley.kit.errors import Conflict, NotFound
from parley.lifecycle import visitor_data
from parley.lifecycle.schemas import (
    DeletionState,
    RetentionOut,
    RetentionSettings,
    VisitorErasure,
    VisitorExport,
    VisitorSelector,
)
from parley.settings import Settings


class VisitorNotFound(NotFound):
    code = "visitor_not_found"
    title = "No data of that visitor in this workspace"


class DeletionAlreadyScheduled(Conflict):
    code = "deletion_already_scheduled"
    title = "This workspace's deletion is already scheduled"


class NoDeletionPending(Conflict):
    code = "no_deletion_pending"
    title = "No deletion of this workspace is pending"


def _query(sel: VisitorSelector) -> visitor_data.VisitorQuery:
    return visitor_data.VisitorQuery(
        visitor_id=sel.visitor_id,
        channel_id=sel.channel_id,
        external_user_id=sel.external_user_id,
        email=sel.email,
    )


async def _footprint(
    session: AsyncSession, tenant_id: TenantId, sel: VisitorSelector
) -> visitor_data.Footprint:
    fp = await visitor_data.find(session, tenant_id, _query(sel))
    if fp.empty:
        raise VisitorNotFound()
    return fp


async def export_visitor(
    session: AsyncSession, tenant_id: TenantId, actor: str, sel: VisitorSelector
) -> VisitorExport:
    """Everything held about the visitor. Reading a person's data is itself recorded: who
    exported, when and how much, naming no one (like the erasure's tombstone)."""
    fp = await _footprint(session, tenant_id, sel)
    data = await visitor_data.export(session, tenant_id, fp)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="visitor.exported",
        target_type="visitor_data",
        target_id=uuid.uuid4(),
        after={"visitors": len(fp.visitor_ids), "messages": len(fp.message_ids)},
    )
    return VisitorExport(visitor_ids=fp.visitor_ids, data=data)


async def erase_visitor(
    session: AsyncSession, tenant_id: TenantId, actor: str, sel: VisitorSelector
) -> VisitorErasure:
    """Erase everything, then append a tombstone to the audit log: who erased, when and how
    many rows, with a fresh id as target, never the visitor's id, identity or email. The
    chain is only appended to, so it still verifies."""
    fp = await _footprint(session, tenant_id, sel)
    counts = await visitor_data.erase(session, tenant_id, fp)
    entry = await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="visitor.erased",
        target_type="visitor_data",
        target_id=uuid.uuid4(),
        after={"rows": counts, "visitors": len(fp.visitor_ids)},
    )
    return VisitorErasure(visitor_ids=fp.visitor_ids, erased=counts, audit_seq=entry.seq)


async def _tenant_row(session: AsyncSession, tenant_id: TenantId) -> Any:
    return (
        await session.execute(
            text(
                "SELECT deletion_requested_at, deletion_due_at, retention_conversations_days, "
                "retention_files_days, retention_logs_days FROM tenants WHERE id = :t "
                "FOR UPDATE"
            ),
            {"t": tenant_id},
        )
    ).one()


async def deletion_state(session: AsyncSession, tenant_id: TenantId) -> DeletionState:
    row = await _tenant_row(session, tenant_id)
    return DeletionState(scheduled=row[1] is not None, requested_at=row[0], due_at=row[1])


async def schedule_deletion(
    session: AsyncSession,
    tenant_id: TenantId,
    actor: str,
    grace_days: int,
    user_id: uuid.UUID | None = None,
) -> DeletionState:
    """Mark the workspace for deletion at the end of the grace period; the deletion job does
    the rest. Until then the owner can cancel and nothing is lost."""
    row = await _tenant_row(session, tenant_id)
    if row[1] is not None:
        raise DeletionAlreadyScheduled()
    now = datetime.now(UTC)
    due = now + timedelta(days=grace_days)
    await session.execute(
        text(
            "UPDATE tenants SET deletion_requested_at = :now, deletion_due_at = :due, "
            "deletion_requested_by = :by WHERE id = :t"
        ),
        {"now": now, "due": due, "by": user_id, "t": tenant_id},
    )
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="workspace.deletion_scheduled",
        target_type="tenant",
        target_id=tenant_id,
        after={"due_at": due.isoformat()},
    )
    return DeletionState(scheduled=True, requested_at=now, due_at=due)


async def cancel_deletion(session: AsyncSession, tenant_id: TenantId, actor: str) -> DeletionState:
    row = await _tenant_row(session, tenant_id)
    if row[1] is None:
        raise NoDeletionPending()
    await session.execute(
        text(
            "UPDATE tenants SET deletion_requested_at = NULL, deletion_due_at = NULL, "
            "deletion_requested_by = NULL WHERE id = :t"
        ),
        {"t": tenant_id},
    )
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="workspace.deletion_cancelled",
        target_type="tenant",
        target_id=tenant_id,
        before={"due_at": row[1].isoformat()},
    )
    return DeletionState(scheduled=False, requested_at=None, due_at=None)


def _retention_out(row: Any, settings: Settings) -> RetentionOut:
    return RetentionOut(
        conversations_days=row[2],
        files_days=row[3],
        logs_days=row[4],
        effective={
            "conversations_days": row[2] or settings.parley_retention_conversations_days,
            "files_days": row[3] or settings.parley_retention_files_days,
            "logs_days": row[4] or settings.parley_retention_logs_days,
        },
    )


async def get_retention(
    session: AsyncSession, tenant_id: TenantId, settings: Settings
) -> RetentionOut:
    return _retention_out(await _tenant_row(session, tenant_id), settings)


async def set_retention(
    session: AsyncSession,
    tenant_id: TenantId,
    actor: str,
    body: RetentionSettings,
    settings: Settings,
) -> RetentionOut:
    before = await _tenant_row(session, tenant_id)
    await session.execute(
        text(
            "UPDATE tenants SET retention_conversations_days = :c, retention_files_days = :f, "
            "retention_logs_days = :l WHERE id = :t"
        ),
        {"c": body.conversations_days, "f": body.files_days, "l": body.logs_days, "t": tenant_id},
    )
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="workspace.retention_changed",
        target_type="tenant",
        target_id=tenant_id,
        before={"conversations": before[2], "files": before[3], "logs": before[4]},
        after=body.model_dump(),
    )
    return _retention_out(await _tenant_row(session, tenant_id), settings)
