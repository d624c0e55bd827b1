"""The `data` of each event the product emits (documented in docs/webhooks.md)."""

from __future__ import annotations

from typing import Any

from parley.models import Conversation, Message


def conversation_started(c: Conversation) -> dict[str, Any]:
    return {
        "conversation_id": str(c.id),
        "bot_id": str(c.bot_id),
        "channel_id": str(c.channel_id),
    }


def message_created(m: Message, *, fallback: bool = False) -> dict[str, Any]:
    """`fallback`: the bot answered with its fallback text (it found no answer)."""
    return {
        "conversation_id": str(m.conversation_id),
        "message_id": str(m.id),
        "role": m.role,
        "text": m.content,
        "citations": list(m.citations or []),
        "fallback": fallback,
    }
