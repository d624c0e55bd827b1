"""The extractive provider with the local embedding model: a sentence that answers a question
worded apart from the docs wins over one that merely shares a word with it. Real model, real
registry path (`provider_for` borrows the embedder retrieval built); Parley's own docs text."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from parley.knowledge.embeddings import embedder_for
from parley.llm.base import ChatMessage, Passage, TextDelta, TurnRequest
from parley.llm.providers import extractive
from parley.llm.providers.extractive import ExtractiveProvider
from parley.llm.registry import provider_for
from tests.knowledge.test_retrieval import runtime_with

QUESTION = "At what time does the nightly retention cleanup happen?"
TITLE = "Data lifecycle: export, erasure, retention, workspace deletion"
INTRO = (
    "Parley holds other companies' customers' conversations. This page says what it does with "
    "them over time, and how an owner or operator gets them out or makes them go away."
)
ANSWER = (
    "The job `lifecycle.apply_retention` runs nightly (02:41) in batches of 500 rows per "
    "transaction. Processed inbound events are also purged after "
    "`PARLEY_INBOUND_RETENTION_DAYS` (7) by the channels' own job."
)


def request() -> TurnRequest:
    return TurnRequest(
        system="",
        messages=[ChatMessage(role="user", content=QUESTION)],
        model="extractive",
        temperature=0.0,
        max_tokens=512,
        fallback_text="Nothing in the knowledge base answers this.",
        passages=[
            Passage(source_id="a", title=TITLE, text=INTRO),
            Passage(source_id="b", title=TITLE, text=ANSWER),
        ],
    )


async def reply(provider: Any) -> str:
    return "".join([e.text async for e in provider.stream(request()) if isinstance(e, TextDelta)])


async def test_with_the_local_model_the_sentence_that_answers_wins(
    app: Any, data_dir: Path
) -> None:
    runtime = dataclasses.replace(
        runtime_with(app, data_dir, parley_embeddings="local"), pgvector=True
    )
    # Words alone (no model built yet): "time" is in the page's introduction, which ranks
    # first, so it leads the answer.
    assert (await reply(provider_for("extractive", runtime))).startswith("This page says")
    embedder = embedder_for(runtime)  # what retrieval does on the first search: it builds
    assert embedder is not None  # the model and embeds the query, which loads it
    await embedder.embed([QUESTION])
    answer = await reply(provider_for("extractive", runtime))
    assert answer.startswith("The job `lifecycle.apply_retention` runs nightly (02:41)")
    assert "over time" not in answer


class Broken:
    name = "local"

    async def embed(self, texts: list[str], *, urgent: bool = False) -> list[list[float]]:
        raise RuntimeError("model unavailable")


class Remote:
    name = "openai"

    async def embed(self, texts: list[str], *, urgent: bool = False) -> list[list[float]]:
        raise AssertionError("the offline provider must not send text to a remote service")


async def test_a_failing_model_costs_the_meaning_not_the_answer() -> None:
    answer = await reply(ExtractiveProvider(lambda: Broken()))
    assert answer == await reply(ExtractiveProvider())  # the words-only choice
    assert answer.startswith("This page says")  # an answer, not the fallback


async def test_a_remote_embedder_is_never_sent_the_passages(app: Any, data_dir: Path) -> None:
    runtime = runtime_with(app, data_dir)
    runtime.clients["knowledge.embedder"] = Remote()
    assert await reply(provider_for("extractive", runtime)) == await reply(ExtractiveProvider())


class Busy:
    """A model with a queue of other answers ahead: it would answer, but too late."""

    name = "local"

    def __init__(self) -> None:
        self.cancelled = False

    async def embed(self, texts: list[str], *, urgent: bool = False) -> list[list[float]]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return []


async def test_a_busy_model_does_not_hold_the_answer_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extractive, "CLOSENESS_TIMEOUT", 0.2)
    busy = Busy()
    answer = await asyncio.wait_for(reply(ExtractiveProvider(lambda: busy)), timeout=5)
    assert answer == await reply(ExtractiveProvider())  # words alone, in time
    assert busy.cancelled  # its request was withdrawn, not left in the model's queue


async def test_a_question_far_from_anything_in_meaning_gets_the_fallback(
    app: Any, data_dir: Path
) -> None:
    """Words alone quote a sentence that shares a word with an off-topic question; the model
    sees that nothing is about it, and the visitor is told so instead."""
    runtime = dataclasses.replace(
        runtime_with(app, data_dir, parley_embeddings="local"), pgvector=True
    )
    embedder = embedder_for(runtime)
    assert embedder is not None
    await embedder.embed(["warm"])  # retrieval has loaded the model
    visitors = Passage(
        source_id="v",
        title="The inbox: conversations and handoff",
        text=(
            "A visitor is named by the first of: the contact's name, the email addresses the "
            "visitor wrote, or a short id. Staff can rename a visitor from the inbox."
        ),
    )
    off_topic = dataclasses.replace(
        request(),
        messages=[ChatMessage(role="user", content="Who wrote Hamlet?")],
        passages=[visitors],
    )

    async def say(provider: Any, turn: TurnRequest) -> str:
        return "".join([e.text async for e in provider.stream(turn) if isinstance(e, TextDelta)])

    assert "visitor wrote" in await say(ExtractiveProvider(), off_topic)  # words alone
    provider = provider_for("extractive", runtime)
    assert await say(provider, off_topic) == "Nothing in the knowledge base answers this."
    # A question about the passage, worded apart from it, is still answered.
    on_topic = dataclasses.replace(
        off_topic, messages=[ChatMessage(role="user", content="What name does a visitor get?")]
    )
    assert "A visitor is named" in await say(provider, on_topic)
