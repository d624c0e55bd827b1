"""Tenancy lint (part of `make lint`): flags tenant data reached other than through the door.

ARCHITECTURE rule 2: one dependency resolves the caller and yields a session whose transaction
has the tenant context set; it is the only producer of `TenantId`. This check walks the AST of
`src/parley` and reports:
- sessions opened directly (`.sessions()`, `AsyncSession(…)`, `async_sessionmaker(…)`) outside
  `kit/db.py`: use `tenant_session`, `platform_session` or `request_transaction`;
- `TenantId(…)` minted outside the modules allowed to mint it;
- the tenant setting (`app.tenant_id`) written anywhere but `kit/db.py`;
- the raw asyncpg lane (`kit.db.driver_statement`) running anything but a `parley_*` tenant
  SQL function (those bind the tenant in their first statement, SECURITY INVOKER so the
  policies apply), or SQL that is not a module constant the lint can read;
- other raw ways in (`asyncpg.connect`/`create_pool`, `get_raw_connection`, `driver_pool`,
  `create_async_engine`/`create_engine`) outside the modules that own them.
Exit status 1 when anything is found.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "parley"

SESSION_OPENERS = {"sessions", "AsyncSession", "async_sessionmaker"}
SESSION_ALLOWED = {"kit/db.py"}
TENANT_ID_ALLOWED = {
    "kit/db.py",  # defines it
    "auth/dependencies.py",  # the door for requests
    "widget/auth.py",  # the door for visitors (tenant from our own signed token)
    "channels/door.py",  # the door for channel ingress (lookup, then signature checked)
    "kit/jobs.py",  # jobs replay the tenant id our own code enqueued
    "tenants/service.py",  # a new tenant's first rows; invitation acceptance by token
}
TENANT_SETTING_ALLOWED = {"kit/db.py", "migrations/rls.py"}
# The raw lane: one statement on an asyncpg connection from `driver_statement`. It may only call
# a tenant SQL function; a query on a table there would skip the tenant binding.
RAW_LANE_METHODS = {"fetch", "fetchrow", "fetchval", "execute", "executemany", "cursor"}
RAW_LANE_SQL = re.compile(r"^\s*SELECT\s+(?:[\w\s,.*]+?\s+FROM\s+)?parley_\w+\s*\(", re.I)
RAW_LANE_SQL_ALLOWED = {"kit/jobs.py"}  # the worker nudge: a NOTIFY, no tenant data
RAW_CONNECT_ATTRS = {"get_raw_connection", "driver_pool"}
RAW_CONNECT_ASYNCPG = {"connect", "create_pool"}
RAW_CONNECT_NAMES = {"create_async_engine", "create_engine"}
RAW_CONNECT_ALLOWED = {
    "kit/db.py",  # the pools
    "kit/jobs.py",  # pgqueuer's own connections (queue tables, no tenant data)
    "kit/migrate.py",  # migrations run as the owner
    "migrations/env.py",  # Alembic's environment, the same
    "kit/embedded_pg.py",  # the embedded server's bootstrap
    "lifecycle/backup.py",  # the operator's backup/restore, as the owner
}


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level string constants (`_SEND = "SELECT …"`, implicit concatenation included)."""
    found: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def _raw_lane(rel: str, tree: ast.Module) -> list[str]:
    """Statements run on a `driver_statement` connection call a `parley_*` function only."""
    if rel in RAW_LANE_SQL_ALLOWED:
        return []
    constants = _constants(tree)
    problems: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.AsyncWith):
            continue
        conns = {
            item.optional_vars.id
            for item in node.items
            if isinstance(item.context_expr, ast.Call)
            and _call_name(item.context_expr) == "driver_statement"
            and isinstance(item.optional_vars, ast.Name)
        }
        if not conns:
            continue
        for sub in ast.walk(node):
            if not (
                isinstance(sub, ast.Call)
                and isinstance(sub.func, ast.Attribute)
                and isinstance(sub.func.value, ast.Name)
                and sub.func.value.id in conns
                and sub.func.attr in RAW_LANE_METHODS
            ):
                continue
            arg = sub.args[0] if sub.args else None
            sql: str | None = None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                sql = arg.value
            elif isinstance(arg, ast.Name):
                sql = constants.get(arg.id)
            if sql is None:
                problems.append(
                    f"{rel}:{sub.lineno}: raw lane (driver_statement) SQL must be a string "
                    "constant of this module, so this lint can read it"
                )
            elif not RAW_LANE_SQL.match(sql):
                problems.append(
                    f"{rel}:{sub.lineno}: raw lane (driver_statement) runs only parley_* tenant "
                    f"SQL functions (they bind the tenant); found {sql.strip()[:60]!r}"
                )
    return problems


def _raw_connection(rel: str, node: ast.Call) -> str | None:
    func = node.func
    name = _call_name(node)
    raw = (
        (isinstance(func, ast.Attribute) and func.attr in RAW_CONNECT_ATTRS)
        or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "asyncpg"
            and func.attr in RAW_CONNECT_ASYNCPG
        )
        or name in RAW_CONNECT_NAMES
    )
    if raw and rel not in RAW_CONNECT_ALLOWED:
        return (
            f"{rel}:{node.lineno}: raw database connection ({name}()); use tenant_session, "
            "platform_session, request_transaction or driver_statement from parley.kit.db"
        )
    return None


def check_file(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    source = path.read_text()
    problems: list[str] = []
    tree = ast.parse(source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in SESSION_OPENERS and rel not in SESSION_ALLOWED:
                problems.append(
                    f"{rel}:{node.lineno}: session opened with {name}(); use tenant_session, "
                    "platform_session or request_transaction from parley.kit.db"
                )
            raw = _raw_connection(rel, node)
            if raw is not None:
                problems.append(raw)
            if name == "TenantId" and rel not in TENANT_ID_ALLOWED:
                problems.append(
                    f"{rel}:{node.lineno}: TenantId minted outside the door; take it from "
                    "the TenantScope of the request (or the job context)"
                )
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "app.tenant_id" in node.value
            and rel not in TENANT_SETTING_ALLOWED
        ):
            problems.append(f"{rel}:{node.lineno}: the tenant setting is written only by kit/db.py")
    problems.extend(_raw_lane(rel, tree))
    return problems


def main(root: Path = ROOT) -> int:
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        problems.extend(check_file(path))
    for line in problems:
        print(line)
    if problems:
        print(f"tenancy lint: {len(problems)} problem(s)")
        return 1
    print("tenancy lint: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
