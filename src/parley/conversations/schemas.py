"""Message shapes shared by every channel."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


# --- the staff inbox (docs/inbox.md) ------------------------------------------------------

HandoffStatus = Literal["bot", "waiting", "assigned", "resolved"]
ChannelType = Literal["widget", "telegram", "webhook", "api"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceFigures(BaseModel):
    first_bot_reply_ms: int | None = None
    first_human_reply_ms: int | None = None
    resolution_ms: int | None = None


class ConversationSummary(BaseModel):
    id: uuid.UUID
    bot_id: uuid.UUID
    channel_id: uuid.UUID
    channel_type: str
    visitor_id: uuid.UUID
    status: str = Field(description="`open` or `closed` (closed once resolved).")
    handoff_status: HandoffStatus
    assignee_id: uuid.UUID | None
    tags: list[str]
    created_at: datetime
    last_message_at: datetime | None
    handoff_requested_at: datetime | None
    fallback_count: int
    last_feedback: str | None
    figures: ServiceFigures


class Contact(BaseModel):
    visitor_id: uuid.UUID
    channel_type: str
    external_id: str | None = Field(
        default=None, description="The channel's own id for the contact (Telegram chat id…)."
    )
    email: str | None
    page_url: str | None
    first_seen_at: datetime
    last_seen_at: datetime


class NoteOut(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    author_id: uuid.UUID | None
    body: str
    created_at: datetime


class TimelineEntry(BaseModel):
    id: uuid.UUID
    kind: str
    actor: str
    from_status: str | None
    to_status: str | None
    assignee_id: uuid.UUID | None
    reason: str | None
    created_at: datetime


class FeedbackOut(BaseModel):
    message_id: uuid.UUID
    rating: str
    comment: str | None


class ConversationDetail(ConversationSummary):
    contact: Contact
    notes: list[NoteOut]
    feedback: list[FeedbackOut]
    timeline: list[TimelineEntry]


class TurnLedger(BaseModel):
    provider: str
    model: str
    status: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int | None
    ttft_ms: int | None
    fallback: bool
    error: str | None


class RetrievalTrace(BaseModel):
    query: str
    mode: str
    chunk_ids: list[uuid.UUID]
    scores: list[float]
    latency_ms: float


class TranscriptMessage(MessageOut):
    author_id: uuid.UUID | None = None
    feedback: FeedbackOut | None = None
    turn: TurnLedger | None = Field(default=None, description="The turn that wrote an answer.")
    retrieval: list[RetrievalTrace] = Field(
        default_factory=list, description="The searches behind an answer."
    )


class OperatorReply(_Strict):
    content: str = Field(min_length=1, max_length=8_000)


class NoteCreate(_Strict):
    body: str = Field(min_length=1, max_length=8_000)


class AssignRequest(_Strict):
    user_id: uuid.UUID | None = Field(
        default=None, description="The member who takes it; the caller when omitted."
    )


class WeeklyHours(_Strict):
    timezone: str = Field(default="UTC", max_length=64)
    days: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[str]] = Field(
        default_factory=dict,
        description='Open spans per weekday, e.g. {"mon": ["09:00-17:30"]}; a day left out '
        "is closed.",
    )


class InboxSettings(_Strict):
    offline_message: str = Field(
        default="Nobody from our team is available right now. Leave your email and we will "
        "get back to you.",
        max_length=1_000,
    )
    hours: WeeklyHours | None = Field(
        default=None, description="Staffed hours; null means whenever an agent is online."
    )


class HandoffOutcome(BaseModel):
    handoff_status: HandoffStatus
    message: MessageOut | None = Field(
        default=None,
        description="What the visitor was told (the bot's handoff message or "
        "the workspace's offline message).",
    )
    ask_email: bool = False
