"""The provider port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from parley.kit.ssrf import UNSAFE_TARGET, UnsafeUrl


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

    @property
    def public_detail(self) -> str:
        """What a tenant may be told. The guard never lets a tenant's base URL reach an
        internal address, so a status shown here is a public server's; a refused address
        reads the same whatever made it refused."""
        if self.status:
            return f"The provider answered HTTP {self.status}."
        return "The provider could not be reached."


class DestinationRefused(ProviderError):
    """The SSRF guard refused the connection to a tenant's provider base URL: not retryable."""

    def __init__(self) -> None:
        super().__init__(UNSAFE_TARGET, retryable=False)

    @property
    def public_detail(self) -> str:
        return f"The provider base URL is refused. {UNSAFE_TARGET}"


def unreachable(exc: BaseException) -> ProviderError:
    """The error for a connection that failed: refused by the guard (final), or down (retry)."""
    if guard_refused(exc):
        return DestinationRefused()
    return ProviderError(f"provider unreachable: {type(exc).__name__}", retryable=True)


def guard_refused(exc: BaseException) -> bool:
    """True when the SSRF guard is somewhere in the chain of causes: SDKs wrap whatever the
    transport raised in their own connection error."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, UnsafeUrl):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


EMBEDDER_KEY = "knowledge.embedder"
"""Where the process's embedder is cached in `runtime.clients` (knowledge builds it for
retrieval); the extractive provider borrows it to weigh sentences by meaning."""


class SentenceEmbedder(Protocol):
    """What the extractive provider needs of an embedder: unit vectors, and a way to go ahead
    of ingestion batches (a visitor is waiting)."""

    name: str

    async def embed(self, texts: list[str], *, urgent: bool = False) -> list[list[float]]: ...


class Provider(Protocol):
    name: str

    def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]: ...
