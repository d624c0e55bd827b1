"""A workspace's full export through the API: the owner asks, a job builds the same export
as `parley export-workspace` (JSON Lines per table, files, checksummed manifest) as one
`.tar.gz` in the workspace's own storage prefix, and the owner downloads it.

Each request, each archive built and each download is in the audit log. Exports are limited
per workspace and hour in the database (so across every API process, Redis or not): an export
reads every row of the workspace, and a loop of them would be a cheap way to load the server.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.kit import jobs
from parley.kit.db import TenantId
from parley.kit.errors import Conflict, NotFound, TooManyRequests
from parley.kit.ids import new_id
from parley.kit.jobs import REGISTRY, JobContext
from parley.knowledge.storage import storage_for, tenant_prefix
from parley.lifecycle import workspace_data
from parley.models import WorkspaceExport

log = structlog.get_logger(__name__)

EXPORT_JOB = "lifecycle.export_workspace"
ARCHIVE_NAME = "export"  # `<tenant>/<export id>/export` in storage; never exported itself
PER_HOUR = 3


class ExportNotFound(NotFound):
    code = "export_not_found"
    title = "Export not found"


class ExportInProgress(Conflict):
    code = "export_in_progress"
    title = "An export of this workspace is already being built"


class ExportNotReady(Conflict):
    code = "export_not_ready"
    title = "This export is not ready to download"


def archive_key(tenant_id: TenantId, export_id: uuid.UUID) -> str:
    return f"{tenant_prefix(tenant_id)}{export_id}/{ARCHIVE_NAME}"


async def request_export(
    session: AsyncSession, tenant_id: TenantId, actor: str, user_id: uuid.UUID | None
) -> WorkspaceExport:
    """Record the request and enqueue its job, in the caller's transaction."""
    busy = await session.scalar(
        select(func.count())
        .select_from(WorkspaceExport)
        .where(
            WorkspaceExport.tenant_id == tenant_id,
            WorkspaceExport.status.in_(("queued", "running")),
        )
    )
    if busy:
        raise ExportInProgress("Wait for it to finish, then download it.")
    now = datetime.now(UTC)
    recent = list(
        await session.scalars(
            select(WorkspaceExport.created_at)
            .where(
                WorkspaceExport.tenant_id == tenant_id,
                WorkspaceExport.created_at > now - timedelta(hours=1),
            )
            .order_by(WorkspaceExport.created_at)
        )
    )
    if len(recent) >= PER_HOUR:
        wait = max(1, int((recent[0] + timedelta(hours=1) - now).total_seconds()) + 1)
        raise TooManyRequests(
            f"At most {PER_HOUR} exports per workspace and hour; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
    row = WorkspaceExport(
        tenant_id=tenant_id, id=new_id(), status="queued", requested_by=user_id, created_at=now
    )
    session.add(row)
    await session.flush()
    await jobs.enqueue(session, EXPORT_JOB, {"tenant_id": str(tenant_id), "export_id": str(row.id)})
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="workspace.export_requested",
        target_type="workspace_export",
        target_id=row.id,
    )
    return row


async def _row(
    session: AsyncSession, tenant_id: TenantId, export_id: uuid.UUID, *, lock: bool = False
) -> WorkspaceExport | None:
    query = select(WorkspaceExport).where(
        WorkspaceExport.tenant_id == tenant_id, WorkspaceExport.id == export_id
    )
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).first()


async def get_export(
    session: AsyncSession, tenant_id: TenantId, export_id: uuid.UUID
) -> WorkspaceExport:
    row = await _row(session, tenant_id, export_id)
    if row is None:
        raise ExportNotFound()
    return row


async def list_exports(session: AsyncSession, tenant_id: TenantId) -> list[WorkspaceExport]:
    rows = await session.scalars(
        select(WorkspaceExport)
        .where(WorkspaceExport.tenant_id == tenant_id)
        .order_by(WorkspaceExport.created_at.desc())
        .limit(50)
    )
    return list(rows)


async def record_download(
    session: AsyncSession, tenant_id: TenantId, actor: str, row: WorkspaceExport
) -> str:
    """The archive's storage key, once the download is in the audit log."""
    if row.status != "ready" or row.storage_key is None:
        raise ExportNotReady(f"Its status is {row.status!r}.")
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="workspace.export_downloaded",
        target_type="workspace_export",
        target_id=row.id,
        after={"bytes": row.size_bytes},
    )
    return row.storage_key


def _archive(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(directory)))
    return buffer.getvalue()


@REGISTRY.job(EXPORT_JOB, max_attempts=3, concurrency_limit=2)
async def build_export(ctx: JobContext) -> None:
    """Build the archive (one snapshot of every tenant table, plus the files), store it, mark
    the row `ready`; after the last failed attempt, `failed` with the error's kind."""
    export_id = uuid.UUID(str(ctx.payload["export_id"]))
    tenant_id = ctx.tenant_id
    async with ctx.tenant_session() as session:
        row = await _row(session, tenant_id, export_id, lock=True)
        if row is None or row.status in ("ready", "failed"):
            return
        row.status = "running"
    storage = storage_for(ctx.runtime)
    try:
        with tempfile.TemporaryDirectory(prefix="parley-export-") as tmp:
            out = Path(tmp) / "export"
            manifest = await workspace_data.export_workspace(ctx.db, storage, tenant_id, out)
            data = _archive(out)
        key = archive_key(tenant_id, export_id)
        await storage.put(key, data)
    except Exception as exc:
        if ctx.final_attempt:
            async with ctx.tenant_session() as session:
                row = await _row(session, tenant_id, export_id)
                if row is not None:
                    row.status = "failed"
                    row.error = type(exc).__name__
                    row.finished_at = datetime.now(UTC)
        raise
    async with ctx.tenant_session() as session:
        row = await _row(session, tenant_id, export_id, lock=True)
        if row is None:  # the workspace is being deleted: its prefix goes with it
            return
        row.status = "ready"
        row.storage_key = key
        row.size_bytes = len(data)
        row.sha256 = hashlib.sha256(data).hexdigest()
        row.finished_at = datetime.now(UTC)
    log.info(
        "workspace.export_ready",
        tenant_id=str(tenant_id),
        export_id=str(export_id),
        tables=len(manifest["tables"]),
        files=len(manifest["files"]),
        bytes=len(data),
    )
