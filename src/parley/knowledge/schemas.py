"""Request and response bodies of the knowledge API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT_CHARS = 2_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextSourceIn(_Strict):
    type: Literal["text"]
    title: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class UrlSourceIn(_Strict):
    type: Literal["url"]
    url: str = Field(min_length=8, max_length=2048)
    title: str | None = Field(default=None, max_length=300)


class FaqPair(_Strict):
    question: str = Field(min_length=1, max_length=2_000)
    answer: str = Field(min_length=1, max_length=20_000)


class FaqSourceIn(_Strict):
    type: Literal["faq"]
    title: str = Field(default="FAQ", min_length=1, max_length=300)
    pairs: list[FaqPair] = Field(min_length=1, max_length=2_000)


SourceIn = Annotated[TextSourceIn | UrlSourceIn | FaqSourceIn, Field(discriminator="type")]


class JobRef(BaseModel):
    id: uuid.UUID
    status: str


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class JobOut(_FromRow):
    id: uuid.UUID
    source_id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float = Field(description="0 to 1.")
    error: str | None
    error_code: str | None = Field(
        description="Stable code of a failure, e.g. `ingest_time_budget_exceeded`, "
        "`ingest_html_too_deep`, `unsafe_url`, `corrupt_file`."
    )
    attempts: int
    index_version: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SourceOut(_FromRow):
    id: uuid.UUID
    type: str
    title: str
    status: Literal["pending", "indexing", "ready", "failed"]
    url: str | None
    filename: str | None
    content_type: str | None
    size_bytes: int
    chunk_count: int
    active_version: int
    previous_version: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class SourceAccepted(SourceOut):
    job: JobRef


class ChunkOut(_FromRow):
    id: uuid.UUID
    ordinal: int
    text: str
    heading: str | None
    page: int | None
    token_count: int


class SearchIn(_Strict):
    query: str = Field(min_length=1, max_length=2_000)
    k: int = Field(default=5, ge=1, le=50)
    bot_id: uuid.UUID | None = Field(
        default=None, description="Search only the sources this bot may use."
    )


class SearchItem(_FromRow):
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    title: str
    text: str
    score: float
    url: str | None = None
    page: int | None = None
    heading: str | None = None


class SearchOut(BaseModel):
    items: list[SearchItem]
    mode: Literal["keyword", "hybrid"]
    notice: str | None = None
    trace: dict[str, Any] = Field(default_factory=dict)


class QualityCheckIn(_Strict):
    questions: list[Annotated[str, Field(min_length=1, max_length=2_000)]] = Field(
        min_length=1, max_length=100
    )
    bot_id: uuid.UUID | None = None
    k: int = Field(default=3, ge=1, le=20)


class QualityResult(BaseModel):
    question: str
    found: bool = Field(description="At least one passage relevant enough for the bot to use.")
    items: list[SearchItem]


class QualityCheckOut(BaseModel):
    results: list[QualityResult]
    found: int
    not_found: list[str] = Field(description="The questions nothing relevant was found for.")
