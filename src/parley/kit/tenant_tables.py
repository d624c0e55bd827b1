"""Which tables hold workspace data, read from the database's own catalogue.

One source of truth for every check that must visit each tenant table: the RLS tests, the
workspace export, the deletion and its verification. A table is a tenant table when it has a
`tenant_id` column (partitions are reached through their parent), so a table a colleague adds
tomorrow is covered the moment its migration runs, with no list to keep up to date.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.ext.asyncio import AsyncSession

PRIVATE_TABLES = frozenset({"conversation_search"})
"""Tenant tables without a policy that the app role cannot touch at all: the inbox's search
copy (migrations 0019 and 0031, decisions 0022 and 0039), kept by a trigger and read through one
SECURITY DEFINER function. A workspace export leaves it out (it is derived), the deletion reaches
it through its cascade from `conversations`, and the verification counts it with
`parley_private_row_count`."""

TENANT_TABLES_SQL = """
SELECT c.relname::text AS name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY 1
"""

FOREIGN_KEYS_SQL = """
SELECT child.relname::text AS child, parent.relname::text AS parent
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = 'public' AND NOT child.relispartition
  AND k.conparentid = 0
"""


async def tenant_tables(session: AsyncSession) -> list[str]:
    """Every tenant table (sorted by name), as the catalogue has them now."""
    return [str(r[0]) for r in await session.execute(text(TENANT_TABLES_SQL))]


async def tenant_tables_raw(conn: asyncpg.Connection) -> list[str]:
    """The same list through a bare asyncpg connection (tests, operator tools)."""
    return [str(r["name"]) for r in await conn.fetch(TENANT_TABLES_SQL)]


async def children_first(session: AsyncSession, tables: list[str]) -> list[str]:
    """`tables` ordered so that a table comes before every table it references: deleting in
    this order never waits on a cascade through a large child table."""
    edges: dict[str, set[str]] = {t: set() for t in tables}  # parent -> its children
    for child, parent in await session.execute(text(FOREIGN_KEYS_SQL)):
        if child in edges and parent in edges and child != parent:
            edges[str(parent)].add(str(child))
    done: list[str] = []
    seen: set[str] = set()

    def visit(table: str) -> None:
        if table in seen:
            return
        seen.add(table)
        for child in sorted(edges[table]):
            visit(child)
        done.append(table)

    for table in sorted(tables):
        visit(table)
    return done
