"""Alembic environment: async engine, our metadata, and tables owned by libraries left alone."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from parley.models import Base

config = context.config
target_metadata = Base.metadata

# pgqueuer's tables are created by our migrations from the library's own DDL; they are not
# described by our models, so autogenerate must not try to drop them.
# `kb_vectors` exists only where pgvector does (migration 0007), so it has no model either.
# `conversation_search` is the staff search's private copy, without a model (migration 0031).
# `parley_sql_sources` records the SQL source files applied (migration 0022), without a model.
EXTERNAL_PREFIXES = ("pgqueuer", "kb_vectors", "conversation_search", "parley_sql_sources")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table" and name and name.startswith(EXTERNAL_PREFIXES):
        return False
    return not (
        type_ == "index"
        and reflected
        and compare_to is None
        and (name or "").startswith(("pgqueuer", "ix_kb_vectors"))
    )


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_async_engine(str(url))
    async with engine.connect() as conn:
        await conn.run_sync(_configure)
        await conn.commit()
    await engine.dispose()


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `parley migrate`")
run()
