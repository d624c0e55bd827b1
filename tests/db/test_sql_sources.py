"""The SQL source files are what the database at head holds (decision 0029).

An edit of a file under `src/parley/sql/` without a migration that re-applies it fails here,
naming the file; so does a file no migration applies, a record whose file is gone, and a
migration that changes a function behind its file's back (an `ALTER FUNCTION`)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import asyncpg

from parley.migrations.sqlsource import (
    PGVECTOR_ONLY,
    SOURCES_TABLE,
    digest,
    read_sql,
    source_drift,
    source_names,
)

SQL_ROOT = Path(str(resources.files("parley.sql")))


async def _recorded(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch(f"SELECT name, sha256 FROM {SOURCES_TABLE}")
    return {r["name"]: r["sha256"] for r in rows}


async def _has_pgvector(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('kb_vectors') IS NOT NULL"))


async def test_every_source_file_is_what_the_database_at_head_applied(
    admin_conn: asyncpg.Connection,
) -> None:
    recorded = await _recorded(admin_conn)
    drift = source_drift(recorded, pgvector=await _has_pgvector(admin_conn))
    assert drift == [], "\n".join(drift)
    assert len(recorded) >= len(source_names()) - len(PGVECTOR_ONLY)


async def test_an_edited_added_or_removed_file_is_named(
    admin_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    recorded = await _recorded(admin_conn)
    copy = tmp_path / "sql"
    shutil.copytree(SQL_ROOT, copy)
    edited = copy / "functions" / "parley_chat_send.sql"
    edited.write_text(edited.read_text().replace("RETURNS jsonb", "RETURNS json", 1))
    (copy / "functions" / "parley_brand_new.sql").write_text("SELECT 1;\n")
    (copy / "triggers" / "messages_searchable.sql").unlink()

    drift = source_drift(recorded, copy, pgvector=await _has_pgvector(admin_conn))

    assert len(drift) == 3, drift
    assert drift[0].startswith("src/parley/sql/functions/parley_brand_new.sql: not applied")
    assert drift[1].startswith("src/parley/sql/functions/parley_chat_send.sql: differs")
    assert drift[2].startswith("src/parley/sql/triggers/messages_searchable.sql: applied by")
    # A recorded hash that is not the file's (the database side of the same check).
    stale = dict(recorded, **{"functions/parley_widget_live.sql": digest("an older text")})
    assert source_drift(stale, pgvector=await _has_pgvector(admin_conn)) == [
        "src/parley/sql/functions/parley_widget_live.sql: differs from the text the database "
        'at head applied; a new migration must apply_sql("functions/parley_widget_live.sql")'
    ]


_DEFINITIONS = """
SELECT 'function ' || p.oid::regprocedure::text AS name,
       pg_get_functiondef(p.oid) || coalesce(array_to_string(p.proacl, ','), '') AS definition
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'trigger ' || t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal
UNION ALL
SELECT 'view ' || c.relname, pg_get_viewdef(c.oid) FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
"""


async def test_applying_every_file_to_the_database_at_head_changes_nothing(
    admin_conn: asyncpg.Connection,
) -> None:
    """The files hold the whole definition: settings (`SET plan_cache_mode`), language,
    security and body. A migration that altered a function without its file fails here."""
    pgvector = await _has_pgvector(admin_conn)
    before = {r["name"]: r["definition"] for r in await admin_conn.fetch(_DEFINITIONS)}
    tx = admin_conn.transaction()
    await tx.start()
    try:
        for name in source_names():
            if pgvector or name not in PGVECTOR_ONLY:
                await admin_conn.execute(read_sql(name))
        after = {r["name"]: r["definition"] for r in await admin_conn.fetch(_DEFINITIONS)}
        # The check sees a change: reset a setting one file declares.
        await admin_conn.execute(
            "ALTER FUNCTION parley_kb_search(uuid, text, text, uuid[], integer, integer, "
            "integer, float8, float8, text, integer, text, float8, integer, integer) "
            "RESET plan_cache_mode"
        )
        altered = {r["name"]: r["definition"] for r in await admin_conn.fetch(_DEFINITIONS)}
    finally:
        await tx.rollback()
    assert after == before
    changed = [name for name in before if altered[name] != before[name]]
    assert len(changed) == 1
    assert changed[0].startswith("function parley_kb_search(")
