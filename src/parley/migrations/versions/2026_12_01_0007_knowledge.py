"""Knowledge base: sources, ingestion jobs, chunks, the BM25 index, retrieval logs, and (where
pgvector exists) chunk vectors with one HNSW index per supported dimension.

Revision ID: 0007_knowledge
Revises: 0006_api_channels
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant

revision: str = "0007_knowledge"
down_revision: str | None = "0006_api_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kb_retrieval_logs",
        sa.Column("bot_id", sa.Uuid(), nullable=True),
        sa.Column("bot_version_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("operation_id", sa.Uuid(), nullable=True),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("chunk_ids", sa.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("scores", sa.ARRAY(sa.Float()), nullable=False),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_kb_retrieval_logs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_kb_retrieval_logs")),
    )
    op.create_index(
        "ix_kb_retrieval_logs_conversation",
        "kb_retrieval_logs",
        ["tenant_id", "conversation_id"],
        unique=False,
    )
    op.create_index(
        "ix_kb_retrieval_logs_message",
        "kb_retrieval_logs",
        ["tenant_id", "message_id"],
        unique=False,
    )
    op.create_table(
        "kb_sources",
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=120), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("active_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
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
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'indexing', 'ready', 'failed')",
            name=op.f("ck_kb_sources_status"),
        ),
        sa.CheckConstraint(
            "type IN ('text', 'faq', 'file', 'url')", name=op.f("ck_kb_sources_type")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_kb_sources_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_kb_sources_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_kb_sources")),
    )
    op.create_table(
        "kb_stats",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("chunks", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_length", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_kb_stats_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_kb_stats")),
    )
    op.create_table(
        "kb_terms",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("df", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_kb_terms_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "lexeme", name="pk_kb_terms", postgresql_include=["df"]
        ),
    )
    op.create_table(
        "kb_chunks",
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("index_version", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=True),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "source_id"],
            ["kb_sources.tenant_id", "kb_sources.id"],
            name=op.f("fk_kb_chunks_tenant_id_source_id_kb_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_kb_chunks_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_kb_chunks")),
    )
    op.create_index(
        "ix_kb_chunks_source_version",
        "kb_chunks",
        ["tenant_id", "source_id", "index_version"],
        unique=False,
    )
    op.create_table(
        "kb_jobs",
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), server_default="ingest", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("progress", sa.Float(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("index_version", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("kind IN ('ingest', 'reindex')", name=op.f("ck_kb_jobs_kind")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f("ck_kb_jobs_status")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "source_id"],
            ["kb_sources.tenant_id", "kb_sources.id"],
            name=op.f("fk_kb_jobs_tenant_id_source_id_kb_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_kb_jobs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_kb_jobs")),
    )
    op.create_index("ix_kb_jobs_source", "kb_jobs", ["tenant_id", "source_id"], unique=False)
    op.create_table(
        "kb_postings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("chunk_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.Column("dl", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "chunk_id"],
            ["kb_chunks.tenant_id", "kb_chunks.id"],
            name=op.f("fk_kb_postings_tenant_id_chunk_id_kb_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "lexeme",
            "chunk_id",
            name="pk_kb_postings",
            postgresql_include=["tf", "dl", "source_id"],
        ),
    )
    op.create_index("ix_kb_postings_chunk", "kb_postings", ["tenant_id", "chunk_id"], unique=False)
    for table in TABLES:
        enable_tenant_rls(table)
        grant("SELECT, INSERT, UPDATE, DELETE", table)
    _create_vectors()


# Dimensions with an HNSW index: all-MiniLM-L6-v2 (384), bge-base/nomic (768),
# bge-large/mxbai (1024), OpenAI text-embedding-3-small / ada-002 (1536).
VECTOR_DIMS = (384, 768, 1024, 1536)


def _create_vectors() -> None:
    """`kb_vectors` only where pgvector can be installed; elsewhere retrieval is keyword-only."""
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
    ).scalar()
    if not available:
        return
    bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    op.execute(
        """
        CREATE TABLE kb_vectors (
            tenant_id uuid NOT NULL,
            chunk_id uuid NOT NULL,
            source_id uuid NOT NULL,
            model text NOT NULL,
            dims integer NOT NULL,
            embedding vector NOT NULL,
            CONSTRAINT pk_kb_vectors PRIMARY KEY (tenant_id, chunk_id),
            CONSTRAINT fk_kb_vectors_chunk FOREIGN KEY (tenant_id, chunk_id)
                REFERENCES kb_chunks (tenant_id, id) ON DELETE CASCADE,
            CONSTRAINT ck_kb_vectors_dims CHECK (vector_dims(embedding) = dims)
        )
        """
    )
    for dims in VECTOR_DIMS:
        op.execute(
            f"CREATE INDEX ix_kb_vectors_hnsw_{dims} ON kb_vectors USING hnsw "
            f"((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
        )
    enable_tenant_rls("kb_vectors")
    grant("SELECT, INSERT, UPDATE, DELETE", "kb_vectors")


TABLES = (
    "kb_sources",
    "kb_jobs",
    "kb_chunks",
    "kb_postings",
    "kb_terms",
    "kb_stats",
    "kb_retrieval_logs",
)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS kb_vectors")
    for table in TABLES:
        disable_tenant_rls(table)
    op.drop_index("ix_kb_postings_chunk", table_name="kb_postings")
    op.drop_table("kb_postings")
    op.drop_index("ix_kb_jobs_source", table_name="kb_jobs")
    op.drop_table("kb_jobs")
    op.drop_index("ix_kb_chunks_source_version", table_name="kb_chunks")
    op.drop_table("kb_chunks")
    op.drop_table("kb_terms")
    op.drop_table("kb_stats")
    op.drop_table("kb_sources")
    op.drop_index("ix_kb_retrieval_logs_message", table_name="kb_retrieval_logs")
    op.drop_index("ix_kb_retrieval_logs_conversation", table_name="kb_retrieval_logs")
    op.drop_table("kb_retrieval_logs")
