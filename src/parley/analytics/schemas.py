"""Analytics responses. The CSV form of a report has exactly the JSON row's fields as columns."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GroupBy = Literal["day", "bot", "channel"]


class MetricsRow(BaseModel):
    """One day (or bot, or channel) of the selected range. Rates are fractions in [0, 1];
    `null` when there is nothing to divide by."""

    key: str = Field(description="The day (YYYY-MM-DD), bot id or channel id of the row.")
    conversations: int
    messages: int
    user_messages: int
    bot_messages: int
    operator_messages: int
    turns: int
    answered: int = Field(description="Turns that answered (not the fallback text).")
    fallback: int = Field(description="Turns that gave the bot's fallback answer.")
    unanswered: int = Field(description="Turns that failed (the model was unavailable).")
    handoffs: int = Field(description="Conversations handed to a person.")
    handoff_rate: float | None
    resolved_by_bot: int
    resolved_by_person: int
    feedback_up: int
    feedback_down: int
    csat: float | None = Field(description="feedback_up / (feedback_up + feedback_down).")
    first_bot_reply_ms_avg: float | None
    first_human_reply_ms_avg: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    ttft_p50_ms: int | None = Field(description="Upper bound of the 10 %-wide bucket.")
    ttft_p95_ms: int | None = Field(description="Upper bound of the 10 %-wide bucket.")


class MetricsReport(BaseModel):
    start: date
    end: date
    group_by: GroupBy
    bot_id: uuid.UUID | None
    channel_id: uuid.UUID | None
    rows: list[MetricsRow]
    total: MetricsRow
    pending_days: int = Field(description="Days changed since their last roll-up.")
    pending_since: datetime | None = Field(description="When the oldest pending change came.")


class ModelRow(BaseModel):
    day: date
    provider: str
    model: str
    turns: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class ModelsReport(BaseModel):
    start: date
    end: date
    rows: list[ModelRow]


# --- knowledge gaps ---------------------------------------------------------------------

Reason = Literal["fallback", "low_relevance", "negative_feedback", "handed_over"]


class GapQuestion(BaseModel):
    message_id: uuid.UUID
    text: str
    asked_at: datetime
    reasons: list[Reason]


class Gap(BaseModel):
    id: uuid.UUID = Field(description="The gap's first question's message id.")
    label: str = Field(description="The question most typical of the group.")
    count: int
    reasons: dict[str, int]
    first_seen: datetime
    last_seen: datetime
    examples: list[GapQuestion]


class GapsReport(BaseModel):
    bot_id: uuid.UUID
    since: datetime
    grouping: Literal["embeddings", "lexical"]
    questions: int = Field(description="Unanswered questions grouped (newest first, capped).")
    gaps: list[Gap]


class GapAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_id: uuid.UUID
    source_id: uuid.UUID = Field(description="The FAQ source that gets the entry.")
    question: str | None = Field(
        default=None, min_length=1, max_length=2_000, description="Default: the gap's label."
    )
    answer: str = Field(min_length=1, max_length=20_000)
    days: int = Field(default=30, ge=1, le=366, description="The window the gap was listed in.")


class GapAnswerOut(BaseModel):
    id: uuid.UUID
    gap_id: uuid.UUID
    bot_id: uuid.UUID
    source_id: uuid.UUID
    job_id: uuid.UUID
    question: str
    questions: int = Field(description="Questions of the gap now marked answered.")
