"""The tenancy lint finds sessions and tenant ids that bypass the door."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("lint_tenancy", ROOT / "scripts" / "lint_tenancy.py")
assert spec is not None
assert spec.loader is not None
lint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lint)


def test_the_source_tree_is_clean() -> None:
    assert lint.main() == 0


def test_violations_are_reported(tmp_path: Path) -> None:
    pkg = tmp_path / "bots"
    pkg.mkdir()
    bad = pkg / "service.py"
    bad.write_text(
        "from parley.kit.db import TenantId\n"
        "async def f(db, raw):\n"
        "    async with db.sessions() as s:\n"
        "        await s.execute(\"SELECT set_config('app.tenant_id', '1', true)\")\n"
        "    return TenantId(raw)\n"
    )
    lint.ROOT = tmp_path
    try:
        problems = lint.check_file(bad)
    finally:
        lint.ROOT = ROOT / "src" / "parley"
    kinds = " ".join(problems)
    assert "session opened" in kinds
    assert "TenantId minted" in kinds
    assert "tenant setting" in kinds
    assert len(problems) == 3


def test_the_raw_lane_runs_tenant_functions_only(tmp_path: Path) -> None:
    """`driver_statement` skips the session's tenant binding, so it may only call a `parley_*`
    function (which binds the tenant itself); a table query there, SQL the lint cannot read,
    or a raw connection of one's own are all reported."""
    pkg = tmp_path / "bots"
    pkg.mkdir()
    bad = pkg / "repository.py"
    bad.write_text(
        "import asyncpg\n"
        "from parley.kit.db import driver_statement\n"
        '_ROWS = "SELECT * FROM bots WHERE id = $1"\n'
        '_FINE = "SELECT * FROM parley_kb_passages($1, $2)"\n'
        "async def f(db, tenant_id, sql):\n"
        "    async with driver_statement(db) as conn:\n"
        "        await conn.fetch(_ROWS, tenant_id)\n"
        "        await conn.fetchval(sql, tenant_id)\n"
        "        await conn.fetch(_FINE, tenant_id, [])\n"
        '        await conn.execute("SELECT parley_widget_live($1, $2, $3)", tenant_id, 1, 2)\n'
        "    return await asyncpg.connect('postgresql://x')\n"
    )
    lint.ROOT = tmp_path
    try:
        problems = lint.check_file(bad)
    finally:
        lint.ROOT = ROOT / "src" / "parley"
    kinds = "\n".join(problems)
    assert "repository.py:7: raw lane (driver_statement) runs only parley_*" in kinds
    assert "repository.py:8: raw lane (driver_statement) SQL must be a string constant" in kinds
    assert "repository.py:11: raw database connection (connect())" in kinds
    assert len(problems) == 3
