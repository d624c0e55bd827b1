"""Start-up shared by the CLI commands: find (or start) the database and migrate it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import structlog

from parley.kit import embedded_pg, migrate
from parley.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class DatabaseTarget:
    app_url: str
    migration_url: str
    embedded: Any = None  # the embedded server handle, if we started one


def resolve_database(settings: Settings) -> DatabaseTarget:
    """The configured database, or the embedded one under PARLEY_DATA_DIR."""
    if settings.database_url is not None:
        app_url = settings.database_url.get_secret_value()
        migration = settings.database_migration_url
        return DatabaseTarget(app_url, migration.get_secret_value() if migration else app_url)
    emb = embedded_pg.start(settings.data_dir)
    return DatabaseTarget(emb.app_url, emb.migration_url, emb)


def prepare(settings: Settings, *, run_migrations: bool = True) -> DatabaseTarget:
    target = resolve_database(settings)
    if run_migrations:
        migrate.upgrade(target.migration_url, target.app_url)
        log.info("db.migrated", head=migrate.head_revision())
    # Child processes (uvicorn workers) read the resolved URL from the environment.
    os.environ["DATABASE_URL"] = target.app_url
    return target


def shutdown(target: DatabaseTarget) -> None:
    """Let go of the embedded server: it stops when no other Parley process uses it (Ctrl-C,
    SIGTERM and a normal exit all come here; the exit handler pgserver registers is the same
    call and then finds nothing left to do)."""
    if target.embedded is not None:
        embedded_pg.release(target.embedded)
