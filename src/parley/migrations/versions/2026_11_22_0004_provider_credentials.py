"""Per-tenant provider credentials, encrypted at rest.

Revision ID: 0004_provider_credentials
Revises: 0003_audit_log
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant

revision: str = "0004_provider_credentials"
down_revision: str | None = "0003_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_credentials",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column("api_key_encrypted", sa.Text(), nullable=False),
        sa.Column("key_hint", sa.String(length=8), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_provider_credentials_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_provider_credentials")),
    )
    op.create_index(
        "uq_provider_credentials_provider",
        "provider_credentials",
        ["tenant_id", "provider"],
        unique=True,
    )
    enable_tenant_rls("provider_credentials")
    grant("SELECT, INSERT, UPDATE, DELETE", "provider_credentials")


def downgrade() -> None:
    disable_tenant_rls("provider_credentials")
    op.drop_index("uq_provider_credentials_provider", table_name="provider_credentials")
    op.drop_table("provider_credentials")
