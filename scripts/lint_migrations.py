"""Migration lint (part of `make lint`): SQL the product runs is source, not history.

Decision 0029. Walks the AST of every migration under `src/parley/migrations/versions` and
reports:
- a migration that imports another migration (`importlib`, `__import__`, `runpy`, or an import
  of `parley.migrations.versions`): each migration is self-contained;
- a migration after 0022 that carries `CREATE [OR REPLACE] FUNCTION/TRIGGER/VIEW` text: the
  definition lives in `src/parley/sql/<kind>/<name>.sql` and the migration calls `apply_sql`;
- a migration that imports pgqueuer (its rendered SQL is frozen into the migration instead);
- an `apply_sql` call whose name is not a literal or names no file under `src/parley/sql`;
- a source file that is not one idempotent definition of the object it is named after
  (`functions/x.sql`: `CREATE OR REPLACE FUNCTION x(`; `triggers/x.sql`: `DROP TRIGGER IF
  EXISTS x ON ...` then `CREATE TRIGGER x`; `views/x.sql`: `CREATE OR REPLACE VIEW x`).
Exit status 1 when anything is found. `--versions DIR --sql DIR` lint another tree (the tests).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VERSIONS = REPO / "src" / "parley" / "migrations" / "versions"
SQL = REPO / "src" / "parley" / "sql"

FIRST_SOURCE_ONLY = 22  # migrations numbered above this carry no SQL definitions inline
NUMBER = re.compile(r"^\d{4}_\d{2}_\d{2}_(\d{4})_")
DEFINITION = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?(?:MATERIALIZED\s+)?"
    r"(FUNCTION|TRIGGER|VIEW)\b",
    re.IGNORECASE,
)
IMPORTERS = {"import_module", "__import__", "spec_from_file_location", "run_path", "run_module"}


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _strings(node: ast.AST) -> list[tuple[int, str]]:
    """String literals in the file, f-strings included (their literal parts joined)."""
    found: list[tuple[int, str]] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.append((sub.lineno, sub.value))
    return found


def check_file(path: Path, sql_root: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = path.name
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("importlib", "runpy") or alias.name.startswith(
                    "parley.migrations.versions"
                ):
                    problems.append(
                        f"{name}:{node.lineno}: a migration imports no other migration "
                        f"(import {alias.name}); copy the text it needs (decision 0029)"
                    )
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] == "pgqueuer":
                problems.append(
                    f"{name}:{node.lineno}: a migration does not render SQL from pgqueuer's "
                    f"installed internals (from {module} import ...); freeze the text"
                )
            if module.startswith(("importlib", "runpy", "parley.migrations.versions")) or (
                node.level > 0
            ):
                problems.append(
                    f"{name}:{node.lineno}: a migration imports no other migration "
                    f"(from {'.' * node.level}{module} import ...); copy the text it needs "
                    "(decision 0029)"
                )
        elif isinstance(node, ast.Call):
            called = _call_name(node)
            if called in IMPORTERS:
                problems.append(
                    f"{name}:{node.lineno}: a migration imports no other migration "
                    f"({called}(...)); copy the text it needs (decision 0029)"
                )
            elif called == "apply_sql":
                arg = node.args[0] if node.args else None
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    problems.append(
                        f"{name}:{node.lineno}: apply_sql takes a literal file name, "
                        "so the lint can check it"
                    )
                elif not (sql_root / arg.value).is_file():
                    problems.append(
                        f"{name}:{node.lineno}: apply_sql({arg.value!r}): no such file under "
                        f"{sql_root.name}/"
                    )
    number = NUMBER.match(name)
    if number and int(number.group(1)) > FIRST_SOURCE_ONLY:
        for line, text in _strings(tree):
            match = DEFINITION.search(text)
            if match:
                problems.append(
                    f"{name}:{line}: CREATE {match.group(1).upper()} inline; put the definition "
                    f"in src/parley/sql/{match.group(1).lower()}s/<name>.sql and call apply_sql"
                )
    return problems


def _code(sql: str) -> str:
    """The SQL without its `--` comment lines (a header may mention other objects)."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def check_source(path: Path, sql_root: Path) -> list[str]:
    kind, name = path.parent.name, path.stem
    rel = f"{kind}/{path.name}"
    code = _code(path.read_text(encoding="utf-8"))
    creates = [(m.group(1).upper(), m.group(2)) for m in _CREATE.finditer(code)]
    problems: list[str] = []
    wanted = {"functions": "FUNCTION", "triggers": "TRIGGER", "views": "VIEW"}.get(kind)
    if wanted is None:
        return [f"sql/{rel}: source files live in functions/, triggers/ or views/"]
    if [(k, n) for k, n in creates] != [(wanted, name)]:
        problems.append(
            f"sql/{rel}: must define exactly the {wanted.lower()} {name} (found "
            f"{', '.join(f'{k.lower()} {n}' for k, n in creates) or 'nothing'})"
        )
    if wanted in ("FUNCTION", "VIEW") and not re.search(
        rf"\bCREATE\s+OR\s+REPLACE\s+{wanted}\s+{name}\b", code, re.IGNORECASE
    ):
        problems.append(f"sql/{rel}: not idempotent; write CREATE OR REPLACE {wanted} {name}")
    if wanted == "TRIGGER" and not re.search(
        rf"\bDROP\s+TRIGGER\s+IF\s+EXISTS\s+{name}\s+ON\b", code, re.IGNORECASE
    ):
        problems.append(f"sql/{rel}: not idempotent; start with DROP TRIGGER IF EXISTS {name} ON")
    return problems


_CREATE = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?(FUNCTION|TRIGGER|VIEW)\s+"
    r"(?:public\.)?([a-z0-9_]+)",
    re.IGNORECASE,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=Path, default=VERSIONS)
    parser.add_argument("--sql", type=Path, default=SQL)
    args = parser.parse_args(argv)
    problems: list[str] = []
    for path in sorted(args.versions.glob("*.py")):
        problems += check_file(path, args.sql)
    for path in sorted(args.sql.glob("*/*.sql")):
        problems += check_source(path, args.sql)
    for problem in problems:
        print(problem)
    summary = f"{len(problems)} problem(s)" if problems else "ok"
    print(f"migration lint: {summary}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
