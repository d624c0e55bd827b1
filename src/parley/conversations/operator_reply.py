"""A person's reply to a conversation, in one database round trip (issue 17, decision 0032).

`parley_operator_reply` (src/parley/sql/functions/) checks and locks the conversation, claims
the `Idempotency-Key`, stores the `operator` message, takes the conversation for its author
when nobody holds it, appends the audit entry, and enqueues the webhook events and the channel
delivery as jobs, all in one statement. Here: the arguments, the answer's shape, and the live
events published after the commit. The reply used to be about twelve ORM statements; each
waited for the scheduler on a crowded machine, which is what P12 measured.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth.access import Principal
from parley.conversations.events import Pending, inbox_topic, staff_event, topic
from parley.conversations.handoff import status_event
from parley.conversations.schemas import message_row_json
from parley.conversations.service import ConversationNotFound
from parley.kit import idempotency
from parley.kit.db import TenantId
from parley.kit.errors import Unprocessable
from parley.kit.ids import new_id

_REPLY = text(
    "SELECT parley_operator_reply(:tenant, :conversation, :scope, :key, :hash, :operation, "
    ":message, :audit, :author, :actor, :content, :lease, :retention)"
)


def _message(row: dict[str, Any]) -> dict[str, Any]:
    """The reply as the API shows it (the same JSON for the first answer and a replay)."""
    data = message_row_json(row)
    author = row.get("author_id")
    data["author_id"] = str(author) if author else None
    return data


async def operator_reply(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation_id: uuid.UUID,
    content: str,
    idem_key: str | None,
    pending: Pending,
) -> tuple[dict[str, Any], bool]:
    """Store a person's reply and send it to the visitor's channel; returns (message, replayed).

    Same `Idempotency-Key` semantics as a visitor's send: the same key and body answer the
    stored message again (nothing is sent twice), the same key with another body is a 422,
    and a duplicate while the first is still running is a 409. Replying takes a conversation
    nobody holds (bot or waiting), so the bot falls silent."""
    body = content.strip()
    if not body:
        raise Unprocessable("The reply is empty.")
    scope = f"operator:{conversation_id}"
    key = idem_key or uuid.uuid4().hex
    result = await session.execute(
        _REPLY,
        {
            "tenant": tenant_id,
            "conversation": conversation_id,
            "scope": scope,
            "key": key,
            "hash": idempotency.request_hash(str(conversation_id), body),
            "operation": idempotency.operation_id(tenant_id, scope, key),
            "message": new_id(),
            "audit": new_id(),
            "author": principal.user_id,
            "actor": principal.actor,
            "content": body,
            "lease": idempotency.LEASE,
            "retention": idempotency.RETENTION,
        },
    )
    raw = result.scalar_one()
    out: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw)
    outcome = out["outcome"]
    if outcome == "not_found":
        raise ConversationNotFound()
    if outcome == "reused":
        raise idempotency.IdempotencyKeyReused()
    if outcome == "in_progress":
        raise idempotency.IdempotencyInProgress(headers={"Retry-After": "1"})
    if outcome == "replay":
        return _message(dict(out["response"]["message"])), True
    data = _message(dict(out["message"]))
    if out["taken"]:
        updated = {
            "conversation_id": str(conversation_id),
            "handoff_status": "assigned",
            "assignee_id": str(principal.user_id),
        }
        pending.add(inbox_topic(tenant_id), staff_event("conversation.updated", None, updated))
        pending.add(
            topic(tenant_id, conversation_id), status_event(conversation_id, "assigned", False)
        )
    pending.add(topic(tenant_id, conversation_id), {"type": "message.created", "message": data})
    pending.add(inbox_topic(tenant_id), staff_event("message.created", uuid.UUID(data["id"]), data))
    if out["jobs"]:
        pending.wake_workers = True
    return data, False
