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
