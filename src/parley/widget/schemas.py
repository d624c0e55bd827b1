"""The public widget API's bodies (SPEC C3; a stable, versioned contract)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from parley.bots.schemas import Theme
from parley.conversations.schemas import MessageOut


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    widget_key: str = Field(min_length=1, max_length=64)
    visitor_token: str | None = Field(default=None, max_length=128)
    conversation_id: uuid.UUID | None = None
    page_url: str | None = Field(
        default=None, max_length=2000, description="The page the widget opened on (staff see it)."
    )


class BotInfo(BaseModel):
    name: str
    greeting: str
    theme: Theme
    voice: bool = Field(default=False, description="The channel offers push-to-talk.")


class SessionResponse(BaseModel):
    token: str
    expires_at: datetime
    conversation_id: uuid.UUID
    visitor_token: str
    bot: BotInfo
    handoff_status: Literal["bot", "waiting", "assigned", "resolved"] = "bot"


class WhoAmI(BaseModel):
    visitor_id: uuid.UUID
    conversation_id: uuid.UUID
    channel_id: uuid.UUID
    bot_id: uuid.UUID
    origin: str
    expires_at: datetime


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=4000)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():  # every channel refuses whitespace-only messages (issue 15)
            raise ValueError("the message is empty")
        return value


class SendResponse(BaseModel):
    message: MessageOut
    reply: MessageOut | None = Field(
        description="The bot's answer; null while a person handles the conversation (their "
        "reply arrives on the events stream), or the handoff announcement."
    )
    handoff_status: Literal["bot", "waiting", "assigned", "resolved"] | None = None
    ask_email: bool = False


class ContactRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class QueuedResponse(BaseModel):
    """`Prefer: respond-async`: the message is stored and its turn enqueued; the reply arrives
    on the conversation's events stream (`reply` is set when a replay finds it answered)."""

    message: MessageOut
    reply: MessageOut | None
    operation_id: uuid.UUID


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackResponse(BaseModel):
    message_id: uuid.UUID
    rating: Literal["up", "down"]
