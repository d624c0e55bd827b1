"""The backup-and-restore drill (docs/runbook.md): a workspace with many conversations on the
embedded database, `parley backup`, then `parley restore` into a fresh data directory and
`parley serve` on it until /readyz answers. Reports the sizes and the times (RTO).

    python -m bench.backup_drill [--conversations 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import clean_env, free_port, stop, stop_embedded_pg, wait_ready

SEED = """
WITH t AS (SELECT id FROM tenants LIMIT 1),
b AS (INSERT INTO bots (tenant_id, id, name) SELECT id, gen_random_uuid(), 'Drill' FROM t
      RETURNING tenant_id, id),
c AS (INSERT INTO channels (tenant_id, id, type, bot_id, name, widget_key, allowed_origins)
      SELECT tenant_id, gen_random_uuid(), 'widget', id, 'Drill', md5(random()::text),
             ARRAY['https://drill.example.com'] FROM b RETURNING tenant_id, id, bot_id),
v AS (INSERT INTO visitors (tenant_id, id, channel_id, token_hash)
      SELECT c.tenant_id, gen_random_uuid(), c.id, md5(g::text || random()::text)
      FROM c, generate_series(1, $1) g RETURNING tenant_id, id, channel_id),
k AS (INSERT INTO conversations (tenant_id, id, bot_id, channel_id, visitor_id, status)
      SELECT v.tenant_id, gen_random_uuid(), c.bot_id, v.channel_id, v.id, 'open'
      FROM v JOIN c ON c.id = v.channel_id RETURNING tenant_id, id)
INSERT INTO messages (tenant_id, id, conversation_id, role, content)
SELECT k.tenant_id, gen_random_uuid(), k.id, r.role,
       'Drill message ' || r.role || ' ' || md5(k.id::text || r.role)
FROM k, (VALUES ('user'), ('assistant'), ('user'), ('assistant'), ('user')) AS r(role)
"""


def _parley(data_dir: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "parley", *args],
        env=clean_env(PARLEY_DATA_DIR=str(data_dir), PARLEY_PASSWORD="drill passphrase 1234"),  # noqa: S106 - a throwaway drill user
        cwd=data_dir,
        check=True,
        capture_output=True,
        timeout=3600,
    )
    return time.perf_counter() - started


async def _seed(data_dir: Path, conversations: int) -> None:
    import asyncpg

    from parley.kit import embedded_pg
    from parley.kit.jobs import asyncpg_dsn

    db = embedded_pg.start(data_dir)
    conn = await asyncpg.connect(asyncpg_dsn(db.migration_url))
    try:
        await conn.execute(SEED.replace("$1", str(int(conversations))))
    finally:
        await conn.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backup_drill")
    parser.add_argument("--conversations", type=int, default=20_000)
    args = parser.parse_args(argv)
    src = Path(tempfile.mkdtemp(prefix="parley-drill-src-"))
    dst = Path(tempfile.mkdtemp(prefix="parley-drill-dst-"))
    backup = Path(tempfile.mkdtemp(prefix="parley-drill-backup-")) / "b"
    try:
        _parley(src, "create-user", "--email", "drill@example.com")
        _parley(src, "create-tenant", "--name", "Drill", "--owner-email", "drill@example.com")
        asyncio.run(_seed(src, args.conversations))
        backup_s = _parley(src, "backup", "--out", str(backup))
        size = sum(p.stat().st_size for p in backup.rglob("*") if p.is_file())
        stop_embedded_pg(src)
        restore_s = _parley(dst, "restore", "--from", str(backup))
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve", "--port", str(port)],
            env=clean_env(PARLEY_DATA_DIR=str(dst)),
            cwd=dst,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            serve_s = wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        finally:
            stop(proc)
        print(
            f"conversations {args.conversations:,} (messages {5 * args.conversations:,}); "
            f"backup {size / 1e6:.1f} MB in {backup_s:.1f} s; restore {restore_s:.1f} s; "
            f"serve ready {serve_s:.1f} s; RTO {restore_s + serve_s:.1f} s"
        )
    finally:
        stop_embedded_pg(src)
        stop_embedded_pg(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
