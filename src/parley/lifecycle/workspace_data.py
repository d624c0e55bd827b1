"""A workspace's data as a whole: export it, delete it in batches, prove nothing is left.

Every function here takes its table list from the catalogue (`kit.tenant_tables`), the same
list the RLS tests check, so a table added tomorrow is exported, deleted and verified without
anyone remembering to add it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import text

from parley.kit.db import Database, TenantId, platform_session, tenant_session, tenant_snapshot
from parley.kit.tenant_tables import children_first, tenant_tables
from parley.knowledge.storage import tenant_prefix
from parley.lifecycle.checksums import file_sha256

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from parley.knowledge.storage import Storage

log = structlog.get_logger(__name__)

EXPORT_FORMAT = "parley.workspace-export/1"
DELETE_BATCH = 2000


async def export_workspace(
    db: Database, storage: Storage, tenant_id: TenantId, out: Path
) -> dict[str, Any]:
    """Write `out/tables/<table>.jsonl` (one JSON object per row), `out/files/<key>` and
    `out/manifest.json` (row counts, byte sizes and SHA-256 of every file). One snapshot
    transaction, so the tables agree with each other."""
    (out / "tables").mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "tenant_id": str(tenant_id),
        "created_at": datetime.now(UTC).isoformat(),
        "tables": {},
        "files": {},
    }
    async with tenant_snapshot(db, tenant_id) as session:
        tenant = (
            await session.execute(
                text("SELECT row_to_json(t)::text FROM tenants t WHERE id = :t"), {"t": tenant_id}
            )
        ).scalar_one()
        (out / "workspace.json").write_text(tenant + "\n")
        for table in await tenant_tables(session):
            if not await _readable(session, table):
                continue  # a private derived copy (the inbox's search index), rebuilt from rows
            path = out / "tables" / f"{table}.jsonl"
            rows = 0
            result = await session.stream(
                text(f"SELECT row_to_json(x)::text FROM {table} x WHERE tenant_id = :t"),  # noqa: S608
                {"t": tenant_id},
            )
            with path.open("w") as f:
                async for (line,) in result:
                    f.write(line + "\n")
                    rows += 1
            manifest["tables"][table] = {
                "file": f"tables/{table}.jsonl",
                "rows": rows,
                "sha256": file_sha256(path),
            }
    for key in await storage.list_keys(tenant_prefix(tenant_id)):
        if key.endswith("/export"):  # an earlier export's archive (exports.py)
            continue
        data = await storage.get(key)
        target = out / "files" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        manifest["files"][key] = {
            "file": f"files/{key}",
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    manifest["workspace_sha256"] = file_sha256(out / "workspace.json")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_export(out: Path) -> list[str]:
    """Files of an export whose checksum does not match its manifest (empty: intact)."""
    manifest = json.loads((out / "manifest.json").read_text())
    bad = [
        entry["file"]
        for entry in [*manifest["tables"].values(), *manifest["files"].values()]
        if file_sha256(out / entry["file"]) != entry["sha256"]
    ]
    if file_sha256(out / "workspace.json") != manifest["workspace_sha256"]:
        bad.append("workspace.json")
    return bad


@dataclass
class Leftovers:
    """What verification found of a workspace that should be gone."""

    rows: dict[str, int] = field(default_factory=dict)  # table -> rows still there
    objects: int = 0
    jobs: int = 0  # queued or held jobs of the workspace
    tables_checked: int = 0

    @property
    def clean(self) -> bool:
        return not self.rows and self.objects == 0 and self.jobs == 0


async def verify_deleted(db: Database, storage: Storage, tenant_id: TenantId) -> Leftovers:
    """Count the workspace's rows in every tenant table the catalogue lists, and its stored
    objects. Runs in the workspace's own context: the RLS policy only compares `tenant_id`,
    so rows left behind are visible even after the `tenants` row is gone."""
    found = Leftovers()
    async with tenant_session(db, tenant_id) as session:
        tables = await tenant_tables(session)
        found.tables_checked = len(tables)
        for table in tables:
            if await _readable(session, table):
                query = text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t")  # noqa: S608
                n = int(await session.scalar(query, {"t": tenant_id}) or 0)
            else:  # a table the app role may not read is counted by its owner's function
                query = text("SELECT parley_private_row_count(:table)")
                n = int(await session.scalar(query, {"table": table}) or 0)
            if n:
                found.rows[table] = n
        found.jobs = int(
            await session.scalar(
                text(f"SELECT count(*) FROM pgqueuer WHERE {_JOBS}"),  # noqa: S608
                _job_params(tenant_id),
            )
            or 0
        )
    found.objects = len(await storage.list_keys(tenant_prefix(tenant_id)))
    return found


# The workspace's jobs that are not running: by the column the fairness trigger fills
# (migration 0020), or, for jobs queued before it, by the id in their JSON payload.
_JOBS = (
    "status <> 'picked' AND (fair_tenant = :t OR (fair_tenant IS NULL "
    "AND encode(payload, 'escape') LIKE :needle))"
)


def _job_params(tenant_id: TenantId) -> dict[str, Any]:
    return {"t": tenant_id, "needle": f'%"tenant_id": "{tenant_id}"%'}


async def _readable(session: AsyncSession, table: str) -> bool:
    return bool(
        await session.scalar(
            text("SELECT has_table_privilege(CAST(:t AS regclass), 'SELECT')"), {"t": table}
        )
    )


async def _deletable(db: Database, tenant_id: TenantId) -> list[str]:
    """Tenant tables the application role may delete from, children first. The audit log is
    not among them (append-only); it goes with the `tenants` row's cascade at the end."""
    async with tenant_session(db, tenant_id) as session:
        tables = await children_first(session, await tenant_tables(session))
        allowed = []
        for table in tables:
            if await session.scalar(
                text("SELECT has_table_privilege(CAST(:t AS regclass), 'DELETE')"), {"t": table}
            ):
                allowed.append(table)
        return allowed


async def delete_workspace(
    db: Database, storage: Storage, tenant_id: TenantId, *, batch: int = DELETE_BATCH
) -> dict[str, int]:
    """Delete every row and stored object of the workspace, `batch` rows per transaction (no
    long lock, no huge cascade), then the workspace itself. Safe to run again after a crash."""
    removed: dict[str, int] = {}
    for table in await _deletable(db, tenant_id):
        total = 0
        while True:
            async with tenant_session(db, tenant_id) as session:
                result = await session.execute(
                    text(
                        f"DELETE FROM {table} WHERE (tableoid, ctid) IN ("  # noqa: S608
                        f"SELECT tableoid, ctid FROM {table} WHERE tenant_id = :t LIMIT :n)"
                    ),
                    {"t": tenant_id, "n": batch},
                )
                n = int(getattr(result, "rowcount", 0) or 0)
            total += n
            if n < batch:
                break
        if total:
            removed[table] = total
    async with tenant_session(db, tenant_id) as session:
        result = await session.execute(
            text(f"DELETE FROM pgqueuer WHERE {_JOBS}"),  # noqa: S608
            _job_params(tenant_id),
        )
        removed["jobs"] = int(getattr(result, "rowcount", 0) or 0)
    removed["storage_objects"] = await storage.delete_prefix(tenant_prefix(tenant_id))
    async with platform_session(db) as session:
        # The cascade takes what the app role may not delete itself (the audit log).
        await session.execute(text("DELETE FROM tenants WHERE id = :t"), {"t": tenant_id})
    log.info("workspace.deleted", tenant_id=str(tenant_id), tables=len(removed))
    return removed
