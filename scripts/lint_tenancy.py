"""Tenancy lint (part of `make lint`): flags tenant data reached other than through the door.

ARCHITECTURE rule 2: one dependency resolves the caller and yields a session whose transaction
has the tenant context set; it is the only producer of `TenantId`. This check walks the AST of
`src/parley` and reports:
- sessions opened directly (`.sessions()`, `AsyncSession(…)`, `async_sessionmaker(…)`) outside
  `kit/db.py`: use `tenant_session`, `platform_session` or `request_transaction`;
- `TenantId(…)` minted outside the modules allowed to mint it;
- the tenant setting (`app.tenant_id`) written anywhere but `kit/db.py`.
Exit status 1 when anything is found.
"""

from __future__ import annotations

import ast
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


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
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
