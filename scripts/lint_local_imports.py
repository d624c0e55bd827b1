"""Function-local imports lint (part of `make lint`): an import inside a function says why.

The layer contract (`[tool.importlinter]` in pyproject.toml, docs/CONVENTIONS.md "Layers")
keeps the packages free of cycles, so an import inside a function is never needed to dodge
one. It stays only to defer an optional or heavy dependency (torch, provider SDKs, voice
engines, boto3, the embedded PostgreSQL) or, in the CLI, a command's own modules; each one
carries a `# lazy: <why>` comment on the line above it (or on its own line). An import group
needs the comment once, above its first line. Exit status 1 when one lacks it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "parley"
SKIP = {"migrations"}  # Alembic revision scripts import inside upgrade() by design
MARK = "# lazy:"


def check_file(path: Path, root: Path = ROOT) -> list[str]:
    rel = path.relative_to(root).as_posix()
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    problems: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for sub in ast.walk(node):
            if not isinstance(sub, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(sub, ast.ImportFrom) and sub.module == "__future__":
                continue
            if not _explained(lines, sub.lineno):
                problems.append(
                    f"{rel}:{sub.lineno}: function-local import without a `{MARK} <why>` "
                    "comment; import at module level (the layers leave no cycle to dodge)"
                )
    return sorted(set(problems))


def _explained(lines: list[str], lineno: int) -> bool:
    """The import's own line, or the nearest line above its group, carries the mark."""
    i = lineno - 1
    if MARK in lines[i]:
        return True
    i -= 1
    while i >= 0:
        text = lines[i].strip()
        if MARK in text:
            return True
        if text.startswith(("import ", "from ")) or text.endswith((",", "(")) or text == ")":
            i -= 1  # still the same import group (or a wrapped import)
            continue
        return False
    return False


def main(root: Path = ROOT) -> int:
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if SKIP.intersection(path.relative_to(root).parts):
            continue
        problems.extend(check_file(path, root))
    for line in problems:
        print(line)
    if problems:
        print(f"local imports lint: {len(problems)} problem(s)")
        return 1
    print("local imports lint: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
