"""The layer contract (`[tool.importlinter]` in pyproject.toml) holds on the tree and fails on a
deliberate violation: a copy of the package with a wrong-way import is refused, by name."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

spec = importlib.util.spec_from_file_location(
    "lint_local_imports", ROOT / "scripts" / "lint_local_imports.py"
)
assert spec is not None
assert spec.loader is not None
local_imports = importlib.util.module_from_spec(spec)
spec.loader.exec_module(local_imports)


def _copy_package(dest: Path) -> Path:
    """The Python files of `src/parley` (enough for the import graph) and the contract."""
    src = ROOT / "src" / "parley"
    for path in src.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        target = dest / "src" / "parley" / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    shutil.copyfile(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest / "src" / "parley"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_contract_holds_and_refuses_wrong_way_imports(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path)
    clean = _lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "3 kept, 0 broken" in clean.stdout

    # kit reaching for a model; the provider port reaching up for the turn; and the same kind
    # of wrong-way import hidden inside a function, which the graph sees all the same.
    _append(pkg / "kit" / "ids.py", "\nfrom parley.models import Bot  # noqa\n")
    _append(pkg / "llm" / "base.py", "\nfrom parley.conversations import turn  # noqa\n")
    _append(
        pkg / "knowledge" / "bm25.py",
        "\n\ndef _hidden() -> None:\n    from parley.widget import service  # noqa\n",
    )
    broken = _lint_imports(tmp_path)
    out = broken.stdout
    assert broken.returncode == 1, out + broken.stderr
    assert "kit imports no feature package and no model BROKEN" in out
    assert "parley.kit.ids -> parley.models" in out
    assert "parley.llm is not allowed to import parley.conversations" in out
    assert "parley.llm.base -> parley.conversations.turn" in out
    assert "parley.knowledge is not allowed to import parley.widget" in out
    assert "parley.knowledge.bm25 -> parley.widget.service" in out


def test_a_function_local_import_must_say_why(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text(
        "def plain() -> None:\n"
        "    from parley.kit import ids  # noqa\n"
        "\n"
        "def heavy() -> None:\n"
        "    # lazy: torch loads with the model, on first use\n"
        "    import torch  # noqa\n"
        "    from transformers import utils  # noqa\n"
    )
    problems = local_imports.check_file(path, tmp_path)
    assert problems == [
        "mod.py:2: function-local import without a `# lazy: <why>` comment; import at module "
        "level (the layers leave no cycle to dodge)"
    ]


def test_the_source_tree_explains_its_local_imports() -> None:
    assert local_imports.main() == 0
