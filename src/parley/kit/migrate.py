"""Running Alembic from code: `parley migrate`, start-up checks, and the tests' migration gates.

Migrations run as the schema owner. They also grant the application role (a role without
SUPERUSER/BYPASSRLS) exactly the privileges it needs; that role's name travels to the
migration scripts through `app_role()`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def alembic_config(url: str, app_role: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = url
    if app_role:
        os.environ["PARLEY_MIGRATION_APP_ROLE"] = app_role
    return cfg


def role_of(url: str) -> str:
    name = make_url(url).username or ""
    if not _IDENT.match(name):
        raise ValueError(f"unsupported database role name {name!r}")
    return name


def app_role() -> str | None:
    """The role to grant to, as set by `upgrade()`; None when the owner is the app role."""
    name = os.environ.get("PARLEY_MIGRATION_APP_ROLE") or None
    if name is not None and not _IDENT.match(name):
        raise ValueError(f"unsupported role name {name!r}")
    return name


def upgrade(migration_url: str, app_url: str, revision: str = "head") -> None:
    """Upgrade the schema as the owner and grant the app role (if it is a different role)."""
    owner, app = role_of(migration_url), role_of(app_url)
    command.upgrade(alembic_config(migration_url, app if app != owner else None), revision)


def downgrade(migration_url: str, app_url: str, revision: str) -> None:
    owner, app = role_of(migration_url), role_of(app_url)
    command.downgrade(alembic_config(migration_url, app if app != owner else None), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://x@/x"))
    heads = script.get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads: {heads}")
    return heads[0]


def current_revision_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            has_table = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
            if not has_table:
                return None
            return await conn.run_sync(current_revision_sync)
    finally:
        await engine.dispose()
