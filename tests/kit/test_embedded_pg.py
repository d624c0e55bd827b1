"""The embedded PostgreSQL runs sized for the machine, not with PostgreSQL's tiny defaults."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import asyncpg
import pytest

from parley.kit import embedded_pg
from parley.kit.jobs import asyncpg_dsn

GB = 1024 * embedded_pg.MB


@pytest.mark.parametrize(
    ("memory", "shared", "cache"),
    [
        (512 * embedded_pg.MB, "128MB", "256MB"),  # a small VM keeps PostgreSQL's floor
        (4 * GB, "1024MB", "2048MB"),  # a quarter of memory
        (24 * GB, "2048MB", "12288MB"),  # capped: the API and workers share the machine
    ],
)
def test_the_server_is_sized_by_the_machine_memory(memory: int, shared: str, cache: str) -> None:
    settings = embedded_pg.tuning(memory)
    assert settings["shared_buffers"] == shared
    assert settings["effective_cache_size"] == cache
    assert settings["jit"] == "off"


def test_machine_memory_is_what_the_os_reports_or_less() -> None:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < embedded_pg.machine_memory() <= total


@pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")), reason="the embedded server is not in use"
)
async def test_the_test_server_runs_with_the_tuning(server_admin_url: str) -> None:
    """The session's embedded server is started as the product starts it."""
    expected = embedded_pg.tuning(embedded_pg.machine_memory())
    conn = await asyncpg.connect(asyncpg_dsn(server_admin_url))
    try:
        for name in ("shared_buffers", "effective_cache_size", "jit"):
            shown = await conn.fetchval(f"SHOW {name}")
            want = expected[name]
            if want.endswith("MB") and int(want[:-2]) % 1024 == 0:
                want = f"{int(want[:-2]) // 1024}GB"  # PostgreSQL shows whole gigabytes so
            assert shown == want, name
    finally:
        await conn.close()


def test_a_rewritten_tuning_file_is_included_once() -> None:
    """Each start rewrites parley.conf; postgresql.conf includes it exactly once."""
    with tempfile.TemporaryDirectory() as d:
        pgdata = Path(d)
        (pgdata / "postgresql.conf").write_text("shared_buffers = 128MB\n")
        embedded_pg.write_tuning(pgdata, memory=4 * GB)
        embedded_pg.write_tuning(pgdata, memory=8 * GB)
        conf = (pgdata / "postgresql.conf").read_text()
        assert conf.count("include_if_exists = 'parley.conf'") == 1
        assert "shared_buffers = '2048MB'" in (pgdata / "parley.conf").read_text()
