"""Every ORM model, imported here so Alembic and the tests see the whole schema."""

from parley.models.analytics import (
    AnalyticsDaily,
    AnalyticsDailyLatency,
    AnalyticsDailyModel,
    AnalyticsDirty,
    GapAnswer,
    GapQuestion,
)
from parley.models.audit import AuditEntry
from parley.models.base import Base, TenantScoped
from parley.models.channels import InboundEvent
from parley.models.chat import (
    Bot,
    BotVersion,
    Channel,
    Conversation,
    ConversationEvent,
    ConversationNote,
    ConversationTag,
    GoldenQuestion,
    IdempotencyKey,
    LlmTurn,
    Message,
    MessageFeedback,
    ProviderCredential,
    Visitor,
)
from parley.models.identity import (
    ApiKey,
    AuthSession,
    Invitation,
    Membership,
    Tenant,
    User,
)
from parley.models.integrations import (
    AutomationRule,
    EmittedEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from parley.models.knowledge import (
    KnowledgeChunk,
    KnowledgeJob,
    KnowledgePosting,
    KnowledgeSource,
    KnowledgeStats,
    KnowledgeTerm,
    RetrievalLog,
)
from parley.models.lifecycle import WorkspaceExport
from parley.models.usage import (
    Plan,
    PlanOverage,
    UsageCounter,
    UsageEvent,
    VisitorBudget,
    VisitorUsage,
)
from parley.models.voice import VoiceTurn

__all__ = [
    "AnalyticsDaily",
    "AnalyticsDailyLatency",
    "AnalyticsDailyModel",
    "AnalyticsDirty",
    "ApiKey",
    "AuditEntry",
    "AuthSession",
    "AutomationRule",
    "Base",
    "Bot",
    "BotVersion",
    "Channel",
    "Conversation",
    "ConversationEvent",
    "ConversationNote",
    "ConversationTag",
    "EmittedEvent",
    "GapAnswer",
    "GapQuestion",
    "GoldenQuestion",
    "IdempotencyKey",
    "InboundEvent",
    "Invitation",
    "KnowledgeChunk",
    "KnowledgeJob",
    "KnowledgePosting",
    "KnowledgeSource",
    "KnowledgeStats",
    "KnowledgeTerm",
    "LlmTurn",
    "Membership",
    "Message",
    "MessageFeedback",
    "Plan",
    "PlanOverage",
    "ProviderCredential",
    "RetrievalLog",
    "Tenant",
    "TenantScoped",
    "UsageCounter",
    "UsageEvent",
    "User",
    "Visitor",
    "VisitorBudget",
    "VisitorUsage",
    "VoiceTurn",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkspaceExport",
]

TENANT_TABLES: tuple[str, ...] = tuple(
    sorted(
        t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.c and t.name != "tenants"
    )
)
"""Every tenant-scoped table: each must have RLS enabled and forced (tests check the list)."""

VECTOR_TABLE = "kb_vectors"
"""Tenant-scoped too, but created by migration 0007 only where pgvector exists (no model)."""
