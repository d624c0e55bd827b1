"""Helpers the migration scripts share: RLS policies, grants, and lookup functions.

Kept in one place so every tenant table gets exactly the same policy text.
"""

from __future__ import annotations

from alembic import op

from parley.kit.migrate import app_role

CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
CURRENT_USER_CTX = "NULLIF(current_setting('app.user_id', true), '')::uuid"


def enable_tenant_rls(table: str, tenant_column: str = "tenant_id") -> None:
    """RLS on and forced (so even the table owner is filtered), one isolation policy."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({tenant_column} = {CURRENT_TENANT}) "
        f"WITH CHECK ({tenant_column} = {CURRENT_TENANT})"
    )


def disable_tenant_rls(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def grant(privileges: str, objects: str) -> None:
    """Grant to the application role when it differs from the owner."""
    role = app_role()
    if role:
        op.execute(f'GRANT {privileges} ON {objects} TO "{role}"')


def grant_schema_usage() -> None:
    role = app_role()
    if role:
        op.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')


def execute_script(sql: str) -> None:
    """Run a multi-statement SQL script (asyncpg's simple-query path) in the migration's
    transaction. SQLAlchemy's asyncpg adapter prepares every statement, which refuses
    scripts such as a library's DDL bundle."""
    from sqlalchemy.util import await_

    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    await_(raw.execute(sql))


def bind_tenant_sql(parameter: str) -> str:
    """The first statement of a SQL function that reaches tenant data in one round trip: it
    sets the tenant context for the calling transaction (as `kit.db.bind_tenant` does). Such
    functions are SECURITY INVOKER, so the tenant policies apply to everything they touch."""
    return f"PERFORM set_config('app.tenant_id', {parameter}::text, true);"
