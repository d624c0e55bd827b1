"""Where a visitor's personal data lives, and the queries that gather or erase all of it.

A visitor is found by its id, by a channel identity (channel + the external user id the
channel sends) or by an email address it left (the inbox's contact field) or wrote in a
message. Their data: the visitor row, their conversations (summary, tags), messages,
feedback, voice turns, the turn ledger (`llm_turns`, whose `error` can quote provider text),
retrieval logs (the visitor's query text), idempotency records (stored replies), webhook
delivery payload copies, emitted-event markers and the channel's stored inbound events (text
and raw payload). Every query runs in the caller's tenant session, so RLS bounds it to the
workspace.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.kit.security import digest

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass(frozen=True)
class VisitorQuery:
    """Exactly one way of naming the visitor (the endpoint's schema enforces it)."""

    visitor_id: uuid.UUID | None = None
    channel_id: uuid.UUID | None = None
    external_user_id: str | None = None
    email: str | None = None


@dataclass
class Footprint:
    """The ids of everything a visitor's data touches, gathered once for export or erasure."""

    visitor_ids: list[uuid.UUID] = field(default_factory=list)
    conversation_ids: list[uuid.UUID] = field(default_factory=list)
    message_ids: list[uuid.UUID] = field(default_factory=list)
    identities: list[tuple[uuid.UUID, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.visitor_ids and not self.identities


def _like_literal(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def find(session: AsyncSession, tenant_id: TenantId, q: VisitorQuery) -> Footprint:
    fp = Footprint()
    params: dict[str, Any] = {"t": tenant_id}
    if q.visitor_id is not None:
        sql = "SELECT id FROM visitors WHERE tenant_id = :t AND id = :v"
        params["v"] = q.visitor_id
    elif q.channel_id is not None and q.external_user_id is not None:
        sql = "SELECT id FROM visitors WHERE tenant_id = :t AND token_hash = :h"
        params["h"] = digest(f"contact:{q.channel_id}:{q.external_user_id}")
        fp.identities.append((q.channel_id, q.external_user_id))
    elif q.email is not None:
        # The email the visitor left (the inbox's contact field), or wrote in a message.
        sql = (
            "SELECT id FROM visitors WHERE tenant_id = :t AND lower(email) = lower(:e) "
            "UNION SELECT c.visitor_id FROM messages m JOIN conversations c "
            "ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id "
            "WHERE m.tenant_id = :t AND m.role = 'user' AND m.content ILIKE :p ESCAPE '\\'"
        )
        params["e"] = q.email.strip()
        params["p"] = f"%{_like_literal(q.email.strip())}%"
    else:
        return fp
    fp.visitor_ids = [r[0] for r in await session.execute(text(sql), params)]
    if fp.visitor_ids:
        rows = await session.execute(
            text(
                "SELECT c.id, m.id FROM conversations c LEFT JOIN messages m "
                "ON m.tenant_id = c.tenant_id AND m.conversation_id = c.id "
                "WHERE c.tenant_id = :t AND c.visitor_id = ANY(:v)"
            ),
            {"t": tenant_id, "v": fp.visitor_ids},
        )
        for conv, msg in rows:
            if conv not in fp.conversation_ids:
                fp.conversation_ids.append(conv)
            if msg is not None:
                fp.message_ids.append(msg)
        # Channel identities that reached these conversations (webhook and Telegram users).
        idents = await session.execute(
            text(
                "SELECT DISTINCT channel_id, external_user_id FROM inbound_events "
                "WHERE tenant_id = :t AND conversation_id = ANY(:c)"
            ),
            {"t": tenant_id, "c": fp.conversation_ids},
        )
        for channel_id, external in idents:
            if (channel_id, external) not in fp.identities:
                fp.identities.append((channel_id, external))
    return fp


def _identity_filter(fp: Footprint) -> tuple[str, dict[str, Any]]:
    """`inbound_events` rows of the visitor: by conversation or by channel identity."""
    return (
        "tenant_id = :t AND (conversation_id = ANY(:c) OR (channel_id, external_user_id) IN "
        "(SELECT * FROM unnest(CAST(:ic AS uuid[]), CAST(:ie AS text[]))))",
        {
            "c": fp.conversation_ids,
            "ic": [i[0] for i in fp.identities],
            "ie": [i[1] for i in fp.identities],
        },
    )


def _deliveries_filter() -> str:
    return (
        "tenant_id = :t AND (payload -> 'data' ->> 'conversation_id' = ANY(CAST(:cs AS text[])) "
        "OR payload -> 'data' ->> 'message_id' = ANY(CAST(:ms AS text[])))"
    )


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = await session.execute(
        text(f"SELECT row_to_json(x)::jsonb AS r FROM ({sql}) x"),  # noqa: S608
        params,
    )
    return [dict(r[0]) for r in result]


def _params(tenant_id: TenantId, fp: Footprint) -> dict[str, Any]:
    return {
        "t": tenant_id,
        "v": fp.visitor_ids,
        "c": fp.conversation_ids,
        "m": fp.message_ids,
        "cs": [str(c) for c in fp.conversation_ids],
        "ms": [str(m) for m in fp.message_ids],
        "scopes": [f"%:{v}" for v in fp.visitor_ids],
    }


async def export(session: AsyncSession, tenant_id: TenantId, fp: Footprint) -> dict[str, Any]:
    """Everything held about the visitor, as plain JSON."""
    base = _params(tenant_id, fp)
    ident_sql, ident_params = _identity_filter(fp)
    conversations = await _rows(
        session,
        "SELECT id, channel_id, bot_id, status, tags, summary, created_at, last_message_at "
        "FROM conversations WHERE tenant_id = :t AND id = ANY(:c) ORDER BY id",
        base,
    )
    messages = await _rows(
        session,
        "SELECT id, conversation_id, role, content, citations, created_at FROM messages "
        "WHERE tenant_id = :t AND id = ANY(:m) ORDER BY id",
        base,
    )
    emails = sorted(
        {e for m in messages if m["role"] == "user" for e in EMAIL.findall(m["content"] or "")}
    )
    return {
        "visitors": await _rows(
            session,
            "SELECT id, channel_id, external_id, email, page_url, created_at, last_seen_at "
            "FROM visitors "
            "WHERE tenant_id = :t AND id = ANY(:v) ORDER BY id",
            base,
        ),
        "contact": {
            "channel_identities": [
                {"channel_id": str(c), "external_user_id": e} for c, e in fp.identities
            ],
            "emails_mentioned": emails,
        },
        "conversations": conversations,
        "messages": messages,
        # Voice turns (SPEC C12): timings, and the recording itself when the workspace keeps
        # recordings (base64).
        "voice_turns": await _rows(
            session,
            "SELECT id, conversation_id, message_id, reply_message_id, input_seconds, "
            "output_seconds, audio_format, encode(audio, 'base64') AS audio_base64, created_at "
            "FROM voice_turns WHERE tenant_id = :t AND conversation_id = ANY(:c) ORDER BY id",
            base,
        ),
        "feedback": await _rows(
            session,
            "SELECT message_id, rating, comment, created_at, updated_at FROM message_feedback "
            "WHERE tenant_id = :t AND message_id = ANY(:m) ORDER BY message_id",
            base,
        ),
        "files": [],  # visitors upload no files today; voice audio is never stored
        "events": {
            "inbound": await _rows(
                session,
                "SELECT id, channel_id, external_user_id, text, payload, status, created_at "  # noqa: S608
                f"FROM inbound_events WHERE {ident_sql} ORDER BY id",
                {**base, **ident_params},
            ),
            "webhook_deliveries": await _rows(
                session,
                "SELECT id, endpoint_id, event_type, payload, status, created_at "  # noqa: S608
                f"FROM webhook_deliveries WHERE {_deliveries_filter()} ORDER BY id",
                base,
            ),
            "emitted": await _rows(
                session,
                "SELECT id, event, subject_id, created_at FROM emitted_events "
                "WHERE tenant_id = :t AND (subject_id = ANY(:c) OR subject_id = ANY(:m)) "
                "ORDER BY id",
                base,
            ),
        },
    }


async def erase(session: AsyncSession, tenant_id: TenantId, fp: Footprint) -> dict[str, int]:
    """Delete every row of the visitor's data; returns the count per table. The visitor row
    goes last: its cascade removes conversations, messages and feedback."""
    base = _params(tenant_id, fp)
    ident_sql, ident_params = _identity_filter(fp)
    statements = {
        "webhook_deliveries": f"DELETE FROM webhook_deliveries WHERE {_deliveries_filter()}",  # noqa: S608
        "kb_retrieval_logs": "DELETE FROM kb_retrieval_logs WHERE tenant_id = :t "
        "AND (conversation_id = ANY(:c) OR message_id = ANY(:m))",
        "llm_turns": "DELETE FROM llm_turns WHERE tenant_id = :t AND conversation_id = ANY(:c)",
        "idempotency_keys": "DELETE FROM idempotency_keys WHERE tenant_id = :t "
        "AND (message_id = ANY(:m) OR scope LIKE ANY(CAST(:scopes AS text[])))",
        "inbound_events": f"DELETE FROM inbound_events WHERE {ident_sql}",  # noqa: S608
        "emitted_events": "DELETE FROM emitted_events WHERE tenant_id = :t "
        "AND (subject_id = ANY(:c) OR subject_id = ANY(:m))",
        "message_feedback": "DELETE FROM message_feedback "
        "WHERE tenant_id = :t AND message_id = ANY(:m)",
        "messages": "DELETE FROM messages WHERE tenant_id = :t AND id = ANY(:m)",
        "conversations": "DELETE FROM conversations WHERE tenant_id = :t AND id = ANY(:c)",
        "visitors": "DELETE FROM visitors WHERE tenant_id = :t AND id = ANY(:v)",
    }
    counts: dict[str, int] = {}
    for table, sql in statements.items():
        result = await session.execute(text(sql), {**base, **ident_params})
        counts[table] = int(getattr(result, "rowcount", 0) or 0)
    return counts
