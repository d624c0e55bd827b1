"""`parley backup` and `parley restore`: the database through PostgreSQL's own tools, the
file storage alongside, a manifest with checksums.

Consistency: the backup opens a REPEATABLE READ transaction, exports its snapshot, counts
every table's rows in it and runs `pg_dump --snapshot` on that same snapshot, so the dump and
the counts describe one instant. Files are copied after it: an upload is written to storage
before its row commits, so every file a dumped row points at is in the copy.

The role must see every row: a superuser or a BYPASSRLS role (FORCE ROW LEVEL SECURITY
applies to the tables' owner too). The embedded database's `postgres` is a superuser.
Restore goes into an empty database (the application role must already exist there, as roles
live in the cluster, not in the dump) and an empty storage; it checks every checksum first and
the row counts after.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from parley.kit.jobs import asyncpg_dsn
from parley.lifecycle import pg_tools
from parley.lifecycle.checksums import file_sha256

if TYPE_CHECKING:
    from parley.knowledge.storage import Storage

FORMAT = "parley.backup/1"
DUMP = "database.dump"
TABLES_SQL = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1"
)


class BackupError(RuntimeError):
    pass


async def _row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    counts = {}
    for row in await conn.fetch(TABLES_SQL):
        name = str(row["relname"])
        counts[name] = int(await conn.fetchval(f'SELECT count(*) FROM public."{name}"'))  # noqa: S608
    return counts


def _empty_dir(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise BackupError(f"{out} is not empty")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    tables: int
    rows: int
    files: int
    seconds: float


async def backup(
    admin_url: str, storage: Storage, out: Path, bin_dir: Path | None = None
) -> BackupResult:
    started = datetime.now(UTC)
    _empty_dir(out)
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
        pg_dump = pg_tools.find_tool("pg_dump", major, bin_dir)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            counts = await _row_counts(conn)
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
            conninfo, env = pg_tools.libpq_target(admin_url)
            await pg_tools.run(
                [
                    str(pg_dump),
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--file={out / DUMP}",
                    f"--dbname={conninfo}",
                ],
                env,
                limit_seconds=6 * 3600,
            )
    finally:
        await conn.close()
    files: dict[str, dict[str, Any]] = {}
    for key in await storage.list_keys(""):
        data = await storage.get(key)
        target = out / "files" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        files[key] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {
        "format": FORMAT,
        "created_at": started.isoformat(),
        "server_major": major,
        "pg_dump": f"{pg_dump} ({pg_tools.tool_major(pg_dump)})",
        "alembic_revision": revision,
        "database": {"file": DUMP, "sha256": file_sha256(out / DUMP)},
        "row_counts": counts,
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return BackupResult(
        out,
        len(counts),
        sum(counts.values()),
        len(files),
        (datetime.now(UTC) - started).total_seconds(),
    )


def verify_backup(src: Path) -> dict[str, Any]:
    """The manifest, once every checksum in it matched; raises on the first mismatch."""
    manifest: dict[str, Any] = json.loads((src / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"not a Parley backup: {manifest.get('format')!r}")
    if file_sha256(src / DUMP) != manifest["database"]["sha256"]:
        raise BackupError(f"{DUMP}: checksum mismatch")
    for key, entry in manifest["files"].items():
        if file_sha256(src / "files" / key) != entry["sha256"]:
            raise BackupError(f"files/{key}: checksum mismatch")
    return manifest


async def restore(
    admin_url: str, app_role: str | None, storage: Storage, src: Path, bin_dir: Path | None = None
) -> dict[str, int]:
    """Restore into an empty database and storage; returns the restored row counts."""
    manifest = verify_backup(src)
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        if await conn.fetch(TABLES_SQL):
            raise BackupError("the target database is not empty; restore needs an empty one")
        if app_role and not await conn.fetchval(
            "SELECT 1 FROM pg_roles WHERE rolname = $1", app_role
        ):
            raise BackupError(f"create the application role {app_role!r} first")
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    if await storage.list_keys(""):
        raise BackupError("the target file storage is not empty")
    pg_restore = pg_tools.find_tool(
        "pg_restore", max(major, int(manifest["server_major"])), bin_dir
    )
    conninfo, env = pg_tools.libpq_target(admin_url)
    await pg_tools.run(
        [
            str(pg_restore),
            "--exit-on-error",
            "--single-transaction",
            "--no-owner",
            f"--dbname={conninfo}",
            str(src / DUMP),
        ],
        env,
        limit_seconds=6 * 3600,
    )
    for key in manifest["files"]:
        await storage.put(key, (src / "files" / key).read_bytes())
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        counts = await _row_counts(conn)
    finally:
        await conn.close()
    if counts != manifest["row_counts"]:
        diff = {
            t: (manifest["row_counts"].get(t), counts.get(t))
            for t in set(counts) | set(manifest["row_counts"])
            if counts.get(t) != manifest["row_counts"].get(t)
        }
        raise BackupError(f"row counts differ after restore: {diff}")
    return counts
