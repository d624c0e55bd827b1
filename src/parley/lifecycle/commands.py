"""What the CLI's data lifecycle commands do, through the same services as the API."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import typer

from parley.kit.boot import build_runtime
from parley.kit.db import TenantId, existing_tenant, tenant_session
from parley.kit.errors import ParleyError
from parley.kit.migrate import role_of
from parley.kit.runtime import Runtime
from parley.knowledge.storage import storage_for, storage_from_settings
from parley.lifecycle import backup as backups
from parley.lifecycle import service, workspace_data
from parley.lifecycle.schemas import VisitorSelector
from parley.settings import Settings

CLI_ACTOR = "cli"


async def _tenant(runtime: Runtime, tenant: str) -> TenantId:
    try:
        found = await existing_tenant(runtime.db, uuid.UUID(tenant))
    except ValueError as exc:
        raise typer.BadParameter(f"not a workspace id: {tenant!r}") from exc
    if found is None:
        raise typer.BadParameter(f"no workspace {tenant}")
    return found


async def visitor(
    settings: Settings, app_url: str, tenant: str, selector: VisitorSelector, erase: bool
) -> dict[str, Any]:
    runtime = await build_runtime(settings, app_url)
    try:
        tid = await _tenant(runtime, tenant)
        async with tenant_session(runtime.db, tid) as session:
            if erase:
                result: Any = await service.erase_visitor(session, tid, CLI_ACTOR, selector)
            else:
                result = await service.export_visitor(session, tid, CLI_ACTOR, selector)
        return dict(json.loads(result.model_dump_json()))
    except ParleyError as exc:
        raise typer.BadParameter(exc.detail) from exc
    finally:
        await runtime.db.dispose()


async def export_workspace(
    settings: Settings, app_url: str, tenant: str, out: Path
) -> dict[str, Any]:
    runtime = await build_runtime(settings, app_url)
    try:
        tid = await _tenant(runtime, tenant)
        return await workspace_data.export_workspace(runtime.db, storage_for(runtime), tid, out)
    finally:
        await runtime.db.dispose()


async def delete_workspace(settings: Settings, app_url: str, tenant: str, now: bool) -> str:
    """Schedule the deletion (grace period), or with `now` delete and verify at once."""
    runtime = await build_runtime(settings, app_url)
    try:
        tid = await _tenant(runtime, tenant)
        if not now:
            async with tenant_session(runtime.db, tid) as session:
                state = await service.schedule_deletion(
                    session, tid, CLI_ACTOR, settings.parley_deletion_grace_days
                )
            return f"Deletion of {tid} scheduled for {state.due_at}"
        storage = storage_for(runtime)
        await workspace_data.delete_workspace(runtime.db, storage, tid)
        left = await workspace_data.verify_deleted(runtime.db, storage, tid)
        if not left.clean:
            raise typer.BadParameter(f"left behind: {left.rows}, {left.objects} object(s)")
        return f"Deleted {tid}; verified 0 rows in {left.tables_checked} tables and 0 objects"
    except ParleyError as exc:
        raise typer.BadParameter(exc.detail) from exc
    finally:
        await runtime.db.dispose()


async def run_backup(settings: Settings, migration_url: str, app_url: str, out: Path) -> str:
    runtime = await build_runtime(settings, app_url)
    try:
        r = await backups.backup(
            migration_url, storage_for(runtime), out, settings.parley_pg_bin_dir
        )
    finally:
        await runtime.db.dispose()
    return (
        f"Backup written to {r.path}: {r.tables} tables, {r.rows} rows, {r.files} files "
        f"in {r.seconds:.1f} s"
    )


async def run_restore(settings: Settings, migration_url: str, app_url: str, src: Path) -> str:
    storage = storage_from_settings(settings)
    counts = await backups.restore(
        migration_url, role_of(app_url), storage, src, settings.parley_pg_bin_dir
    )
    return f"Restored {len(counts)} tables, {sum(counts.values())} rows; counts match the backup"
