"""Every ORM model, imported here so Alembic and the tests see the whole schema."""

from parley.models.audit import AuditEntry
from parley.models.base import Base, TenantScoped
from parley.models.channels import InboundEvent
from parley.models.chat import (
    Bot,
    BotVersion,
    Channel,
    Conversation,
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

__all__ = [
    "ApiKey",
    "AuditEntry",
    "AuthSession",
    "Base",
    "Bot",
    "BotVersion",
    "Channel",
    "Conversation",
    "IdempotencyKey",
    "InboundEvent",
    "Invitation",
    "LlmTurn",
    "Membership",
    "Message",
    "MessageFeedback",
    "ProviderCredential",
    "Tenant",
    "TenantScoped",
    "User",
    "Visitor",
]

TENANT_TABLES: tuple[str, ...] = tuple(
    sorted(
        t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.c and t.name != "tenants"
    )
)
"""Every tenant-scoped table: each must have RLS enabled and forced (tests check the list)."""
