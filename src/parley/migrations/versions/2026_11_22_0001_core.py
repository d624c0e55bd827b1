"""Platform core: tenants, users, sessions, memberships, invitations, API keys, job queue.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from parley.migrations.rls import (
    CURRENT_USER_CTX,
    disable_tenant_rls,
    enable_tenant_rls,
    execute_script,
    grant,
    grant_schema_usage,
)

revision: str = "0001_core"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


# pgqueuer 1.6.0's own DDL, frozen into files when it was first installed (issue 16): the
# migration does not depend on the installed library's internals.
_FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def _pgqueuer_install_sql() -> str:
    return (_FROZEN / "0001_pgqueuer_install.sql").read_text(encoding="utf-8")


def _pgqueuer_uninstall_sql() -> str:
    return (_FROZEN / "0001_pgqueuer_uninstall.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), server_default="active", nullable=False),
        sa.Column("plan", sa.String(40), server_default="free", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f("ck_tenants_status")),
        sa.CheckConstraint(
            "slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name=op.f("ck_tenants_slug_format")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("display_name", sa.String(120), nullable=True),
        sa.Column("is_platform_admin", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_sessions_token_hash")),
    )
    op.create_index("ix_auth_sessions_family_id", "auth_sessions", ["family_id"])
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"])

    op.create_table(
        "memberships",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'editor', 'viewer')", name=op.f("ck_memberships_role")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_memberships_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_memberships")),
    )
    op.create_index(op.f("ix_memberships_user_id"), "memberships", ["user_id"])
    op.create_table(
        "invitations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'editor', 'viewer')", name=op.f("ck_invitations_role")
        ),
        sa.ForeignKeyConstraint(
            ["accepted_by"],
            ["users.id"],
            name=op.f("fk_invitations_accepted_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["users.id"],
            name=op.f("fk_invitations_invited_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_invitations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_invitations")),
    )
    op.create_index("ix_invitations_token_hash", "invitations", ["token_hash"], unique=True)
    op.create_table(
        "api_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("prefix", sa.String(24), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(40)), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_api_keys_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_api_keys")),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"], unique=True)

    # Row-level security on every tenant table.
    for table in ("memberships", "invitations", "api_keys"):
        enable_tenant_rls(table)
    # A signed-in user may read their own memberships across tenants (GET /v1/me), and nothing
    # else of other tenants: the policy is SELECT-only and keyed on the user context.
    op.execute(
        "CREATE POLICY member_reads_own ON memberships FOR SELECT "
        f"USING (user_id = {CURRENT_USER_CTX})"
    )

    # Narrow lookups needed before the tenant is known. They return only the tenant id; the
    # caller then opens the tenant context and reads the row itself, through RLS.
    op.execute(
        """
        CREATE FUNCTION parley_api_key_tenant(p_prefix text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
        $$ SELECT tenant_id FROM api_keys WHERE prefix = p_prefix $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION parley_invitation_tenant(p_token_hash text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
        $$ SELECT tenant_id FROM invitations WHERE token_hash = p_token_hash $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION parley_api_key_tenant(text) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION parley_invitation_tenant(text) FROM PUBLIC")

    # The job queue (pgqueuer), from the library's own DDL for the pinned version.
    execute_script(_pgqueuer_install_sql())

    grant_schema_usage()
    grant("SELECT, INSERT, UPDATE, DELETE", "tenants, users, auth_sessions")
    grant("SELECT, INSERT, UPDATE, DELETE", "memberships, invitations, api_keys")
    grant("SELECT", "alembic_version")
    grant(
        "SELECT, INSERT, UPDATE, DELETE",
        "pgqueuer, pgqueuer_log, pgqueuer_schedules, pgqueuer_statistics",
    )
    grant("USAGE, SELECT", "ALL SEQUENCES IN SCHEMA public")
    grant("EXECUTE", "FUNCTION parley_api_key_tenant(text), parley_invitation_tenant(text)")


def downgrade() -> None:
    execute_script(_pgqueuer_uninstall_sql())
    op.execute("DROP FUNCTION IF EXISTS parley_invitation_tenant(text)")
    op.execute("DROP FUNCTION IF EXISTS parley_api_key_tenant(text)")
    op.execute("DROP POLICY IF EXISTS member_reads_own ON memberships")
    for table in ("memberships", "invitations", "api_keys"):
        disable_tenant_rls(table)
    op.drop_table("api_keys")
    op.drop_table("invitations")
    op.drop_table("memberships")
    op.drop_table("auth_sessions")
    op.drop_table("users")
    op.drop_table("tenants")
