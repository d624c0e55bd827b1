"""The provider port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Passage:
    """A retrieved knowledge passage (untrusted data, cited in the answer)."""

    source_id: str
    title: str
    text: str
    url: str | None = None
    score: float = 0.0


@dataclass(frozen=True)
class TurnRequest:
    system: str
    messages: list[ChatMessage]
    model: str
    temperature: float
    max_tokens: int
    fallback_text: str
    passages: list[Passage] = field(default_factory=list)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


StreamEvent = TextDelta | Usage


class ProviderError(Exception):
    """The provider failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class Provider(Protocol):
    name: str

    def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]: ...
