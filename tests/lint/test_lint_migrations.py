"""The migration lint (`make lint`) refuses migrations that import each other, carry SQL
definitions inline after 0022, or apply a SQL source file that does not exist (decision 0029)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LINT = ROOT / "scripts" / "lint_migrations.py"

HEAD = '''"""A migration."""
from alembic import op

from parley.migrations.sqlsource import apply_sql

revision = "00NN_x"
down_revision = "0022_sql_sources"
'''


def _lint(versions: Path, sql: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LINT), "--versions", str(versions), "--sql", str(sql)],
        capture_output=True,
        text=True,
        check=False,
    )


def _tree(tmp_path: Path, migration: str, name: str = "2026_12_04_0023_x.py") -> tuple[Path, Path]:
    versions, sql = tmp_path / "versions", tmp_path / "sql"
    (sql / "functions").mkdir(parents=True)
    (sql / "functions" / "parley_known.sql").write_text(
        "CREATE OR REPLACE FUNCTION parley_known() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
    )
    versions.mkdir()
    (versions / name).write_text(HEAD + migration)
    return versions, sql


def test_the_tree_is_clean() -> None:
    result = _lint(ROOT / "src" / "parley" / "migrations" / "versions", ROOT / "src/parley/sql")
    assert result.returncode == 0, result.stdout
    assert "migration lint: ok" in result.stdout


def test_a_compliant_migration_passes(tmp_path: Path) -> None:
    versions, sql = _tree(
        tmp_path, 'def upgrade() -> None:\n    apply_sql("functions/parley_known.sql")\n'
    )
    result = _lint(versions, sql)
    assert result.returncode == 0, result.stdout


def test_importing_another_migration_fails(tmp_path: Path) -> None:
    versions, sql = _tree(
        tmp_path,
        "import importlib\n\n"
        "def upgrade() -> None:\n"
        '    old = importlib.import_module("parley.migrations.versions.0010")\n'
        '    op.execute(old.SEND.replace("a", "b"))\n',
        name="2026_12_01_0013_x.py",  # old migrations are held to this rule too
    )
    result = _lint(versions, sql)
    assert result.returncode == 1
    assert "2026_12_01_0013_x.py:8: a migration imports no other migration" in result.stdout
    assert "(import_module(...))" in result.stdout


def test_importing_pgqueuer_internals_fails(tmp_path: Path) -> None:
    versions, sql = _tree(
        tmp_path,
        "from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment\n\n"
        "def upgrade() -> None:\n"
        "    op.execute(QueryBuilderEnvironment().build_install_query())\n",
    )
    result = _lint(versions, sql)
    assert result.returncode == 1
    assert "does not render SQL from pgqueuer's installed internals" in result.stdout


def test_an_inline_function_after_0022_fails(tmp_path: Path) -> None:
    versions, sql = _tree(
        tmp_path,
        "def upgrade() -> None:\n"
        '    op.execute("""\n'
        "    CREATE OR REPLACE FUNCTION parley_new() RETURNS int\n"
        "    LANGUAGE sql AS $$ SELECT 1 $$\n"
        '    """)\n',
    )
    result = _lint(versions, sql)
    assert result.returncode == 1
    assert "CREATE FUNCTION inline; put the definition in src/parley/sql/functions/" in (
        result.stdout
    )


def test_an_inline_trigger_in_an_fstring_fails(tmp_path: Path) -> None:
    versions, sql = _tree(
        tmp_path,
        'T = "messages"\n\ndef upgrade() -> None:\n'
        '    op.execute(f"CREATE TRIGGER t AFTER INSERT ON {T} EXECUTE FUNCTION f()")\n',
    )
    result = _lint(versions, sql)
    assert result.returncode == 1
    assert "CREATE TRIGGER inline" in result.stdout


def test_a_missing_or_computed_source_name_fails(tmp_path: Path) -> None:
    versions, sql = _tree(
        tmp_path,
        "def upgrade() -> None:\n"
        '    apply_sql("functions/parley_gone.sql")\n'
        '    name = "functions/parley_known.sql"\n'
        "    apply_sql(name)\n",
    )
    result = _lint(versions, sql)
    assert result.returncode == 1
    assert "apply_sql('functions/parley_gone.sql'): no such file under sql/" in result.stdout
    assert "apply_sql takes a literal file name" in result.stdout
    assert "migration lint: 2 problem(s)" in result.stdout


def test_the_lint_would_have_caught_the_old_patching(tmp_path: Path) -> None:
    """0013 as it was before issue 16: it loaded 0010 and string-patched its function."""
    versions, sql = _tree(
        tmp_path,
        "import importlib\n\n"
        "def _send_0010() -> str:\n"
        "    send_path = importlib.import_module(\n"
        '        "parley.migrations.versions.2026_12_01_0010_send_path"\n'
        "    )\n"
        "    return str(send_path.SEND)\n",
        name="2026_12_01_0013_quiet_async_send.py",
    )
    result = _lint(versions, sql)
    assert result.returncode == 1
    assert result.stdout.count("a migration imports no other migration") == 2


def test_a_source_file_must_be_one_idempotent_definition_of_its_name(tmp_path: Path) -> None:
    versions, sql = _tree(
        tmp_path, 'def upgrade() -> None:\n    apply_sql("functions/parley_known.sql")\n'
    )
    (sql / "functions" / "parley_known.sql").write_text(
        "-- parley_known: what it is for.\n"
        "CREATE OR REPLACE FUNCTION parley_known() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
    )
    assert _lint(versions, sql).returncode == 0
    (sql / "functions" / "parley_other.sql").write_text(
        "CREATE FUNCTION parley_other() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
    )
    (sql / "functions" / "parley_misnamed.sql").write_text(
        "CREATE OR REPLACE FUNCTION parley_elsewhere() RETURNS int LANGUAGE sql AS $$ 1 $$;\n"
    )
    (sql / "triggers").mkdir()
    (sql / "triggers" / "t_new.sql").write_text(
        "CREATE TRIGGER t_new AFTER INSERT ON messages EXECUTE FUNCTION f();\n"
    )
    result = _lint(versions, sql)
    assert result.returncode == 1
    assert "sql/functions/parley_other.sql: not idempotent; write CREATE OR REPLACE" in (
        result.stdout
    )
    assert "sql/functions/parley_misnamed.sql: must define exactly the function" in result.stdout
    assert "sql/triggers/t_new.sql: not idempotent; start with DROP TRIGGER IF EXISTS t_new ON" in (
        result.stdout
    )
