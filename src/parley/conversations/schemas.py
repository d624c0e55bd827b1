"""Message shapes shared by every channel."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from parley.models import Message


class Citation(BaseModel):
    source_id: str
    title: str
    url: str | None = None
    snippet: str


class MessageOut(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    role: Literal["user", "assistant", "operator"]
    content: str
    citations: list[Citation] = Field(default_factory=list)
    created_at: datetime
    spoken: bool = Field(default=False, description="A voice turn's transcript.")


def message_out(m: Message) -> MessageOut:
    return MessageOut(
        id=m.id,
        conversation_id=m.conversation_id,
        role=m.role,
        content=m.content,
        citations=[Citation.model_validate(c) for c in (m.citations or [])],
        created_at=m.created_at,
        spoken=m.spoken,
    )


def message_json(m: Message) -> dict[str, Any]:
    return message_out(m).model_dump(mode="json")


def message_row_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """The same JSON as `message_json`, from a `messages` row a SQL function returned."""
    return MessageOut.model_validate(row).model_dump(mode="json")
