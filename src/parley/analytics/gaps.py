"""Knowledge gaps: the questions a bot could not answer, grouped by meaning, and the one
action that answers a group (an FAQ entry, a re-index, the questions marked answered).

Gaps are computed when asked, from the stored rows (the newest `MAX_QUESTIONS` unanswered
questions of the window); only the answers are stored. A gap's id is its first question's
message id, so the same gap keeps its id while new questions join it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.analytics import grouping
from parley.analytics import repository as repo
from parley.analytics.schemas import Gap, GapAnswerIn, GapAnswerOut, GapQuestion, GapsReport
from parley.bots import service as bots
from parley.kit.db import TenantId
from parley.kit.errors import NotFound
from parley.kit.ids import new_id
from parley.knowledge import service as knowledge
from parley.knowledge.embeddings import EmbeddingsError, embedder_for
from parley.knowledge.schemas import FaqPair
from parley.models import GapAnswer

if TYPE_CHECKING:
    from parley.auth.access import Principal
    from parley.kit.runtime import Runtime

log = structlog.get_logger(__name__)

MAX_QUESTIONS = 2_000
EXAMPLES = 5
REASONS = (
    ("fallback", "fallback"),
    ("low_relevance", "low_relevance"),
    ("disliked", "negative_feedback"),
    ("handed_over", "handed_over"),
)


class GapNotFound(NotFound):
    code = "gap_not_found"
    title = "Gap not found"


@dataclass
class _Grouped:
    gaps: list[Gap]
    members: dict[uuid.UUID, list[uuid.UUID]]
    questions: int
    mode: str


def _reasons(row: dict[str, Any]) -> list[Any]:
    return [name for column, name in REASONS if row[column]]


async def _vectors(
    runtime: Runtime | None, texts: list[str]
) -> tuple[list[grouping.Vector], float, str]:
    embedder = embedder_for(runtime) if runtime is not None else None
    if embedder is not None and texts:
        try:
            vectors = await embedder.embed(texts)
            return grouping.dense(vectors), grouping.DENSE_THRESHOLD, "embeddings"
        except EmbeddingsError as exc:  # lexical grouping still answers
            log.warning("analytics.gaps.embeddings_failed", error=exc.code)
    return grouping.tfidf(texts), grouping.LEXICAL_THRESHOLD, "lexical"


async def _grouped(
    session: AsyncSession,
    runtime: Runtime | None,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    since: datetime,
) -> _Grouped:
    await bots.get_bot(session, tenant_id, bot_id)  # another workspace's bot: 404
    rows = await repo.failed_questions(session, tenant_id, bot_id, since, MAX_QUESTIONS)
    vectors, threshold, mode = await _vectors(runtime, [r["content"] for r in rows])
    gaps, members = [], {}
    for indexes in grouping.group(vectors, threshold):
        group = [rows[i] for i in indexes]
        centre = grouping.Group()
        for i in indexes:
            centre.add(i, vectors[i])
        typical = max(indexes, key=lambda i: (centre.similarity(vectors[i]), -i))
        reasons: Counter[str] = Counter()
        for r in group:
            reasons.update(_reasons(r))
        newest = sorted(group, key=lambda r: r["created_at"], reverse=True)
        gap_id = group[0]["id"]
        members[gap_id] = [r["id"] for r in group]
        gaps.append(
            Gap(
                id=gap_id,
                label=rows[typical]["content"][:500],
                count=len(group),
                reasons=dict(reasons),
                first_seen=group[0]["created_at"],
                last_seen=newest[0]["created_at"],
                examples=[
                    GapQuestion(
                        message_id=r["id"],
                        text=r["content"][:500],
                        asked_at=r["created_at"],
                        reasons=_reasons(r),
                    )
                    for r in newest[:EXAMPLES]
                ],
            )
        )
    gaps.sort(key=lambda g: (-g.count, -g.last_seen.timestamp()))
    return _Grouped(gaps, members, len(rows), mode)


async def list_gaps(
    session: AsyncSession,
    runtime: Runtime | None,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    *,
    days: int,
    limit: int,
) -> GapsReport:
    since = datetime.now(UTC) - timedelta(days=days)
    found = await _grouped(session, runtime, tenant_id, bot_id, since)
    return GapsReport(
        bot_id=bot_id,
        since=since,
        grouping="embeddings" if found.mode == "embeddings" else "lexical",
        questions=found.questions,
        gaps=found.gaps[:limit],
    )


async def answer_gap(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    principal: Principal,
    gap_id: uuid.UUID,
    body: GapAnswerIn,
) -> GapAnswerOut:
    """Write the FAQ entry into the chosen source, re-index it, and mark the gap's questions
    answered, in the caller's transaction (a failure leaves none of it)."""
    since = datetime.now(UTC) - timedelta(days=body.days)
    found = await _grouped(session, runtime, tenant_id, body.bot_id, since)
    gap = next((g for g in found.gaps if g.id == gap_id), None)
    if gap is None:
        raise GapNotFound("No open gap of this bot has this id (answered already, or too old).")
    question = body.question or gap.label
    job = await knowledge.add_faq_entry(
        session,
        runtime,
        tenant_id,
        principal,
        body.source_id,
        FaqPair(question=question, answer=body.answer),
    )
    answer = GapAnswer(
        tenant_id=tenant_id,
        id=new_id(),
        bot_id=body.bot_id,
        source_id=body.source_id,
        job_id=job.id,
        question=question,
        answer=body.answer,
        questions=gap.count,
        created_by=principal.user_id,
    )
    await repo.record_gap_answer(session, tenant_id, answer, found.members[gap_id])
    log.info(
        "analytics.gap.answered",
        tenant_id=str(tenant_id),
        bot_id=str(body.bot_id),
        gap_id=str(gap_id),
        questions=gap.count,
    )
    return GapAnswerOut(
        id=answer.id,
        gap_id=gap_id,
        bot_id=body.bot_id,
        source_id=body.source_id,
        job_id=job.id,
        question=question,
        questions=gap.count,
    )
