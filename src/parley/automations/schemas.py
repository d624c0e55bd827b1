"""Automation rule bodies: `{"name","event","condition","action"}`, each a tagged union."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.kit.event_names import EventType


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageContains(_Strict):
    """The visitor's message contains `value` (case-insensitive)."""

    type: Literal["message_contains"]
    value: str = Field(min_length=1, max_length=200)


class BotCouldNotAnswer(_Strict):
    """The bot replied with its fallback text (no answer found)."""

    type: Literal["bot_could_not_answer"]


class VisitorLeftEmail(_Strict):
    """The visitor's message contains an email address."""

    type: Literal["visitor_left_email"]


class Always(_Strict):
    type: Literal["always"]


Condition = Annotated[
    MessageContains | BotCouldNotAnswer | VisitorLeftEmail | Always, Field(discriminator="type")
]


class CallWebhook(_Strict):
    """Deliver the event to this endpoint even if it is not subscribed to it."""

    type: Literal["call_webhook"]
    webhook_id: uuid.UUID


class TagConversation(_Strict):
    type: Literal["tag_conversation"]
    tag: str = Field(min_length=1, max_length=60, pattern=r"^[\w.:\- ]+$")


class RequestHandoff(_Strict):
    """Mark the conversation as waiting for a human and emit `handoff.requested` (once)."""

    type: Literal["request_handoff"]


Action = Annotated[CallWebhook | TagConversation | RequestHandoff, Field(discriminator="type")]


class RuleCreate(_Strict):
    name: str = Field(min_length=1, max_length=120)
    event: EventType
    condition: Condition
    action: Action
    enabled: bool = True


class RuleUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    event: EventType | None = None
    condition: Condition | None = None
    action: Action | None = None
    enabled: bool | None = None


class RuleOut(BaseModel):
    id: uuid.UUID
    name: str
    event: str
    condition: Condition
    action: Action
    enabled: bool
    created_at: datetime
    updated_at: datetime
