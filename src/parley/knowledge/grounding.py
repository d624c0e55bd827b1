"""Grounding a turn: retrieve the bot's passages for the user's message, keep only those
relevant enough to answer from, and write the retrieval log (the trace behind the answer)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from parley.kit.db import tenant_session
from parley.kit.ids import new_id
from parley.knowledge import retrieval
from parley.knowledge.service import RELEVANCE_THRESHOLD, SUPPORT_THRESHOLD
from parley.llm.base import Passage
from parley.models import RetrievalLog

if TYPE_CHECKING:
    from parley.bots.schemas import BotConfig
    from parley.kit.db import TenantId
    from parley.kit.runtime import Runtime


async def passages_for_turn(
    runtime: Runtime,
    tenant_id: TenantId,
    *,
    config: BotConfig,
    query: str,
    bot_id: uuid.UUID | None,
    bot_version_id: uuid.UUID | None,
    conversation_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    operation_id: uuid.UUID | None,
) -> list[Passage]:
    """The passages the model gets (best first). The search runs on the driver pool; the
    retrieval log is written afterwards in a tenant transaction of its own, so no transaction
    is held open while the search runs."""
    result = await retrieval.search(
        runtime.db,
        runtime,
        tenant_id,
        query,
        k=config.retrieval.top_k,
        source_ids=config.knowledge_source_ids,
    )
    chosen = choose(result.items, config.retrieval.min_score)
    async with tenant_session(runtime.db, tenant_id) as session:
        session.add(
            RetrievalLog(
                tenant_id=tenant_id,
                id=new_id(),
                bot_id=bot_id,
                bot_version_id=bot_version_id,
                conversation_id=conversation_id,
                message_id=message_id,
                operation_id=operation_id,
                query=query,
                mode=result.mode,
                chunk_ids=[h.chunk_id for h in result.items],
                scores=[h.score for h in result.items],
                detail={
                    "selected": [str(h.chunk_id) for h in chosen],
                    "relevance": [round(h.relevance, 4) for h in result.items],
                    "threshold": RELEVANCE_THRESHOLD,
                    "support_threshold": SUPPORT_THRESHOLD,
                    "min_score": config.retrieval.min_score,
                    **{k: v for k, v in result.detail.items() if k != "notice"},
                },
                latency_ms=round(result.latency_ms, 3),
            )
        )
    return [passage(h) for h in chosen]


def choose(items: list[retrieval.Hit], min_score: float) -> list[retrieval.Hit]:
    """The hits a turn is grounded on: none unless one is relevant enough to answer from, then
    those that support it (scores below the bot's `min_score` never count)."""
    usable = [h for h in items if h.score >= min_score]
    answerable = any(h.relevance >= RELEVANCE_THRESHOLD for h in usable)
    return [h for h in usable if h.relevance >= SUPPORT_THRESHOLD] if answerable else []


def passage(h: retrieval.Hit) -> Passage:
    return Passage(source_id=str(h.source_id), title=h.title, text=h.text, url=h.url, score=h.score)


def citations_for(passages: list[Passage], answer: str) -> list[dict[str, Any]]:
    """The passages an answer points at with `[n]` markers, as message citations."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, p in enumerate(passages, start=1):
        if f"[{i}]" not in answer or p.source_id + str(i) in seen:
            continue
        seen.add(p.source_id + str(i))
        snippet = " ".join(p.text.split())
        if len(snippet) > 240:
            snippet = snippet[:240].rsplit(" ", 1)[0] + " …"
        citation: dict[str, Any] = {"source_id": p.source_id, "title": p.title, "snippet": snippet}
        if p.url:
            citation["url"] = p.url
        out.append(citation)
    return out
