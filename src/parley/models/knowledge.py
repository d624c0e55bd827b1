"""Knowledge base: sources, ingestion jobs, chunks, the BM25 index, retrieval logs.

The BM25 index is three tables (SPEC C6): `kb_postings` (one row per lexeme per chunk; its
primary key covers the scoring columns so scoring reads the index only), `kb_terms` (document
frequency per lexeme) and `kb_stats` (chunk count and total length per tenant). Vectors live in
`kb_vectors`, created by the migration only where pgvector exists (so it has no model here).

Index versions: a source's chunks carry the `index_version` they were built for; only the
source's `active_version` is in the postings and vectors. Re-indexing builds the new version
and swaps it in one transaction, so readers see the old index until the new one is complete;
the previous version's chunks are kept so it can be restored without re-extraction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from parley.models.base import Base, TenantScoped, utcnow_column


class KnowledgeSource(TenantScoped, Base):
    __tablename__ = "kb_sources"
    __table_args__ = (
        CheckConstraint("type IN ('text', 'faq', 'file', 'url')", name="type"),
        CheckConstraint("status IN ('pending', 'indexing', 'ready', 'failed')", name="status"),
    )

    type: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    url: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(120))
    size_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    storage_key: Mapped[str | None] = mapped_column(Text)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    active_version: Mapped[int] = mapped_column(Integer, server_default="0")
    previous_version: Mapped[int | None] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class KnowledgeJob(TenantScoped, Base):
    """An ingestion run of one source, as the API shows it (the queue job is pgqueuer's)."""

    __tablename__ = "kb_jobs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "source_id"],
            ["kb_sources.tenant_id", "kb_sources.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
        CheckConstraint("kind IN ('ingest', 'reindex')", name="kind"),
        Index("ix_kb_jobs_source", "tenant_id", "source_id"),
    )

    source_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(8), server_default="ingest")
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    progress: Mapped[float] = mapped_column(Float, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    index_version: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = utcnow_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class KnowledgeChunk(TenantScoped, Base):
    __tablename__ = "kb_chunks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "source_id"],
            ["kb_sources.tenant_id", "kb_sources.id"],
            ondelete="CASCADE",
        ),
        Index("ix_kb_chunks_source_version", "tenant_id", "source_id", "index_version"),
    )

    source_id: Mapped[uuid.UUID] = mapped_column()
    index_version: Mapped[int] = mapped_column(Integer)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    heading: Mapped[str | None] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer)


class KnowledgePosting(Base):
    """One lexeme of one active chunk: term frequency and the chunk's length (BM25 inputs)."""

    __tablename__ = "kb_postings"
    __table_args__ = (
        PrimaryKeyConstraint(
            "tenant_id",
            "lexeme",
            "chunk_id",
            name="pk_kb_postings",
            postgresql_include=["tf", "dl", "source_id"],
        ),
        ForeignKeyConstraint(
            ["tenant_id", "chunk_id"],
            ["kb_chunks.tenant_id", "kb_chunks.id"],
            ondelete="CASCADE",
        ),
        Index("ix_kb_postings_chunk", "tenant_id", "chunk_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column()
    lexeme: Mapped[str] = mapped_column(Text)
    chunk_id: Mapped[uuid.UUID] = mapped_column()
    source_id: Mapped[uuid.UUID] = mapped_column()
    tf: Mapped[int] = mapped_column(Integer)
    dl: Mapped[int] = mapped_column(Integer)


class KnowledgeTerm(Base):
    """Document frequency of a lexeme among a tenant's active chunks."""

    __tablename__ = "kb_terms"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "lexeme", name="pk_kb_terms", postgresql_include=["df"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    lexeme: Mapped[str] = mapped_column(Text)
    df: Mapped[int] = mapped_column(Integer)


class KnowledgeStats(Base):
    """Per-tenant corpus size for BM25: number of active chunks and their total length."""

    __tablename__ = "kb_stats"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    chunks: Mapped[int] = mapped_column(BigInteger, server_default="0")
    total_length: Mapped[int] = mapped_column(BigInteger, server_default="0")


class RetrievalLog(TenantScoped, Base):
    """What one retrieval returned, in order, with scores: the trace behind an answer."""

    __tablename__ = "kb_retrieval_logs"
    __table_args__ = (
        Index("ix_kb_retrieval_logs_message", "tenant_id", "message_id"),
        Index("ix_kb_retrieval_logs_conversation", "tenant_id", "conversation_id"),
    )

    bot_id: Mapped[uuid.UUID | None] = mapped_column()
    bot_version_id: Mapped[uuid.UUID | None] = mapped_column()
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    message_id: Mapped[uuid.UUID | None] = mapped_column()
    operation_id: Mapped[uuid.UUID | None] = mapped_column()
    query: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16))
    chunk_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid))
    scores: Mapped[list[float]] = mapped_column(ARRAY(Float))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = utcnow_column()
