"""The quality gate on publish (issue 19, docs/bots.md "Quality gate", decision 0037).

A bot keeps golden questions, each expecting a cited source, a retrieved passage and/or a
substring of the answer. Publishing a draft runs them against the draft and against the live
version — retrieval plus the version's own answer path, storing no conversation — and, when the
draft passes fewer, either refuses (`block`: 409 `quality_gate_failed`) or publishes with the
verdict attached (`warn`). The verdict is recorded on the version, so the version and its diff
show it.

This lives above `bots`, `knowledge` and `llm` (it needs all three); the publish route goes
through here, and `bots.versions.publish` only stores the verdict it is handed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.auth.access import Principal
from parley.bots import repository as bots_repo
from parley.bots import versions
from parley.bots.schemas import BotConfig, GateSide, GoldenResult, QualityGateResult, VersionOut
from parley.bots.service import BotNotFound, check_sources
from parley.kit.db import TenantId
from parley.kit.errors import Conflict, NotFound
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, page_by_id
from parley.kit.runtime import Runtime
from parley.knowledge import retrieval
from parley.knowledge.grounding import choose, citations_for, passage
from parley.llm.base import ProviderError, TextDelta, TurnRequest
from parley.llm.credentials import resolve
from parley.llm.prompt import history_messages, system_prompt
from parley.llm.registry import provider_for
from parley.models import Bot, GoldenQuestion

MAX_QUESTIONS = 50
"""Golden questions per bot: the gate runs each twice while the publish holds the bot's lock."""
ANSWER_CHARS = 300
"""How much of an answer a result keeps."""

GateMode = Literal["block", "warn"]


# --- bodies -----------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GoldenQuestionIn(_Strict):
    question: str = Field(min_length=1, max_length=2_000)
    expected_source_id: uuid.UUID | None = Field(
        default=None, description="A knowledge source the answer must cite."
    )
    expected_passage: str | None = Field(
        default=None,
        min_length=1,
        max_length=2_000,
        description="Text a retrieved passage must contain (case and spacing ignored).",
    )
    expected_answer: str | None = Field(
        default=None,
        min_length=1,
        max_length=2_000,
        description="Text the answer must contain (case and spacing ignored).",
    )

    @model_validator(mode="after")
    def _expects_something(self) -> GoldenQuestionIn:
        if not (self.expected_source_id or self.expected_passage or self.expected_answer):
            raise ValueError(
                "Give at least one of expected_source_id, expected_passage, expected_answer"
            )
        return self


class GoldenQuestionPatch(_Strict):
    """Fields to change; a field set to null drops that expectation (one must remain)."""

    question: str | None = Field(default=None, min_length=1, max_length=2_000)
    expected_source_id: uuid.UUID | None = None
    expected_passage: str | None = Field(default=None, min_length=1, max_length=2_000)
    expected_answer: str | None = Field(default=None, min_length=1, max_length=2_000)


class GoldenQuestionOut(BaseModel):
    id: uuid.UUID
    bot_id: uuid.UUID
    question: str
    expected_source_id: uuid.UUID | None
    expected_passage: str | None
    expected_answer: str | None
    created_at: datetime


class QualityGateSettings(_Strict):
    mode: GateMode = Field(
        description="`block` refuses a draft that passes fewer golden questions than the "
        "published version; `warn` publishes it and reports the drop."
    )


class QualityGateSettingsOut(BaseModel):
    mode: GateMode
    golden_questions: int


# --- errors -----------------------------------------------------------------------------------


class GoldenQuestionNotFound(NotFound):
    code = "golden_question_not_found"
    title = "Golden question not found"


class TooManyGoldenQuestions(Conflict):
    code = "golden_questions_limit"
    title = f"A bot keeps at most {MAX_QUESTIONS} golden questions"


class QualityGateFailed(Conflict):
    code = "quality_gate_failed"
    title = "The draft passes fewer golden questions than the published version"


class GoldenExpectationMissing(Conflict):
    code = "golden_question_expects_nothing"
    title = "A golden question needs an expected source, passage or answer"


# --- golden questions -------------------------------------------------------------------------


def _out(q: GoldenQuestion) -> GoldenQuestionOut:
    return GoldenQuestionOut(
        id=q.id,
        bot_id=q.bot_id,
        question=q.question,
        expected_source_id=q.expected_source_id,
        expected_passage=q.expected_passage,
        expected_answer=q.expected_answer,
        created_at=q.created_at,
    )


def _record(q: GoldenQuestion) -> dict[str, object]:
    return _out(q).model_dump(mode="json", exclude={"created_at"})


async def _bot(session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID) -> Bot:
    bot = (
        await session.execute(select(Bot).where(Bot.tenant_id == tenant_id, Bot.id == bot_id))
    ).scalar_one_or_none()
    if bot is None:
        raise BotNotFound()
    return bot


async def _question(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID, question_id: uuid.UUID
) -> GoldenQuestion:
    q = (
        await session.execute(
            select(GoldenQuestion).where(
                GoldenQuestion.tenant_id == tenant_id,
                GoldenQuestion.bot_id == bot_id,
                GoldenQuestion.id == question_id,
            )
        )
    ).scalar_one_or_none()
    if q is None:
        raise GoldenQuestionNotFound()
    return q


async def _all_questions(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID
) -> list[GoldenQuestion]:
    return list(
        (
            await session.execute(
                select(GoldenQuestion)
                .where(GoldenQuestion.tenant_id == tenant_id, GoldenQuestion.bot_id == bot_id)
                .order_by(GoldenQuestion.id)
            )
        ).scalars()
    )


async def create_question(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    body: GoldenQuestionIn,
) -> GoldenQuestionOut:
    if await bots_repo.lock_bot(session, tenant_id, bot_id) is None:
        raise BotNotFound()
    if body.expected_source_id is not None:
        await check_sources(session, tenant_id, [body.expected_source_id])
    count = await session.scalar(
        select(func.count())
        .select_from(GoldenQuestion)
        .where(GoldenQuestion.tenant_id == tenant_id, GoldenQuestion.bot_id == bot_id)
    )
    if (count or 0) >= MAX_QUESTIONS:
        raise TooManyGoldenQuestions()
    q = GoldenQuestion(
        tenant_id=tenant_id,
        id=new_id(),
        bot_id=bot_id,
        question=body.question.strip(),
        expected_source_id=body.expected_source_id,
        expected_passage=body.expected_passage,
        expected_answer=body.expected_answer,
        created_by=principal.user_id,
    )
    session.add(q)
    await session.flush()
    await session.refresh(q)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.golden_question.created",
        target_type="bot",
        target_id=bot_id,
        after=_record(q),
    )
    return _out(q)


async def list_questions(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[GoldenQuestionOut]:
    await _bot(session, tenant_id, bot_id)
    query = (
        select(GoldenQuestion)
        .where(GoldenQuestion.tenant_id == tenant_id, GoldenQuestion.bot_id == bot_id)
        .order_by(GoldenQuestion.id)
        .limit(limit + 1)
    )
    after = after_id(cursor)
    if after is not None:
        query = query.where(GoldenQuestion.id > after)
    rows = list((await session.execute(query)).scalars())
    return page_by_id(rows, limit, _out, lambda q: q.id)


async def get_question(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID, question_id: uuid.UUID
) -> GoldenQuestionOut:
    return _out(await _question(session, tenant_id, bot_id, question_id))


async def update_question(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    question_id: uuid.UUID,
    body: GoldenQuestionPatch,
) -> GoldenQuestionOut:
    q = await _question(session, tenant_id, bot_id, question_id)
    before = _record(q)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("expected_source_id") is not None:
        await check_sources(session, tenant_id, [changes["expected_source_id"]])
    if changes.get("question") is None:
        changes.pop("question", None)  # the question itself cannot be dropped
    for name, value in changes.items():
        setattr(q, name, value.strip() if name == "question" else value)
    if not (q.expected_source_id or q.expected_passage or q.expected_answer):
        raise GoldenExpectationMissing()
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.golden_question.updated",
        target_type="bot",
        target_id=bot_id,
        before=before,
        after=_record(q),
    )
    return _out(q)


async def delete_question(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    question_id: uuid.UUID,
) -> None:
    q = await _question(session, tenant_id, bot_id, question_id)
    before = _record(q)
    await session.delete(q)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.golden_question.deleted",
        target_type="bot",
        target_id=bot_id,
        before=before,
    )


# --- the gate's mode --------------------------------------------------------------------------


async def get_settings(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID
) -> QualityGateSettingsOut:
    bot = await _bot(session, tenant_id, bot_id)
    count = await session.scalar(
        select(func.count())
        .select_from(GoldenQuestion)
        .where(GoldenQuestion.tenant_id == tenant_id, GoldenQuestion.bot_id == bot_id)
    )
    return QualityGateSettingsOut(mode=_mode(bot), golden_questions=int(count or 0))


async def put_settings(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    body: QualityGateSettings,
) -> QualityGateSettingsOut:
    bot = await bots_repo.lock_bot(session, tenant_id, bot_id)
    if bot is None:
        raise BotNotFound()
    before = bot.quality_gate_mode
    bot.quality_gate_mode = body.mode
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.quality_gate.updated",
        target_type="bot",
        target_id=bot_id,
        before={"mode": before},
        after={"mode": body.mode},
    )
    return await get_settings(session, tenant_id, bot_id)


def _mode(bot: Bot) -> GateMode:
    return "block" if bot.quality_gate_mode == "block" else "warn"


# --- running the questions --------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


async def _answer(
    session: AsyncSession, runtime: Runtime, tenant_id: TenantId, config: BotConfig, q: str
) -> tuple[list[retrieval.Hit], str, bool]:
    """Retrieval and the version's answer path for one question, as a turn would run them,
    with no conversation stored and no retrieval log written. Returns the grounding hits, the
    answer, and whether the provider failed."""
    result = await retrieval.search(
        runtime.db,
        runtime,
        tenant_id,
        q,
        k=config.retrieval.top_k,
        source_ids=config.knowledge_source_ids,
    )
    hits = choose(result.items, config.retrieval.min_score)
    passages = [passage(h) for h in hits]
    credential = (
        await resolve(session, runtime, tenant_id, config.provider)
        if config.provider != "extractive"
        else None
    )
    request = TurnRequest(
        system=system_prompt(config.instructions, passages),
        messages=history_messages([], q),
        model=config.model,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        fallback_text=config.fallback_text,
        passages=passages,
    )
    parts: list[str] = []
    try:
        async for event in provider_for(config.provider, runtime, credential).stream(request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
    except ProviderError:
        return hits, "", True
    return hits, "".join(parts).strip() or config.fallback_text, False


async def _check(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    config: BotConfig,
    q: GoldenQuestion,
) -> GoldenResult:
    hits, answer, failed = await _answer(session, runtime, tenant_id, config, q.question)
    checks: list[Literal["source", "passage", "answer", "provider_error"]] = []
    if failed:
        checks.append("provider_error")
    else:
        if q.expected_source_id is not None:
            cited = {c["source_id"] for c in citations_for([passage(h) for h in hits], answer)}
            if str(q.expected_source_id) not in cited:
                checks.append("source")
        if q.expected_passage and not any(_norm(q.expected_passage) in _norm(h.text) for h in hits):
            checks.append("passage")
        if q.expected_answer and _norm(q.expected_answer) not in _norm(answer):
            checks.append("answer")
    return GoldenResult(
        question_id=q.id,
        question=q.question,
        passed=not checks,
        failed_checks=checks,
        answer=answer[:ANSWER_CHARS],
    )


async def _side(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    version: VersionOut,
    questions: list[GoldenQuestion],
) -> tuple[GateSide, set[uuid.UUID]]:
    results = [await _check(session, runtime, tenant_id, version.config, q) for q in questions]
    passed = {r.question_id for r in results if r.passed}
    return (
        GateSide(
            version_id=version.id,
            number=version.number,
            passed=len(passed),
            total=len(results),
            pass_rate=round(len(passed) / len(results), 4) if results else 1.0,
            failing=[r for r in results if not r.passed],
        ),
        passed,
    )


async def check_version(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
) -> GateSide | None:
    """The bot's golden questions run against one version (the console's "Run them now");
    None when the bot keeps none."""
    await _bot(session, tenant_id, bot_id)
    questions = await _all_questions(session, tenant_id, bot_id)
    if not questions:
        return None
    version = await versions.get_version(session, tenant_id, bot_id, version_id)
    side, _ = await _side(session, runtime, tenant_id, version, questions)
    return side


async def evaluate(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
) -> QualityGateResult | None:
    """The gate's verdict on publishing `version_id` now; None when the bot keeps no golden
    questions. Blocking or not is the caller's business (`publish`)."""
    bot = await _bot(session, tenant_id, bot_id)
    questions = await _all_questions(session, tenant_id, bot_id)
    if not questions:
        return None
    draft = await versions.get_version(session, tenant_id, bot_id, version_id)
    current = await bots_repo.published(session, tenant_id, bot_id)
    draft_side, draft_passed = await _side(session, runtime, tenant_id, draft, questions)
    live_side: GateSide | None = None
    regressions: list[uuid.UUID] = []
    if current is not None:
        live = versions.version_out(current[1])
        live_side, live_passed = await _side(session, runtime, tenant_id, live, questions)
        regressions = sorted(live_passed - draft_passed)
    worse = live_side is not None and draft_side.passed < live_side.passed
    mode = _mode(bot)
    return QualityGateResult(
        mode=mode,
        outcome=("blocked" if mode == "block" else "warned") if worse else "passed",
        draft=draft_side,
        published=live_side,
        regressions=regressions,
        checked_at=datetime.now(UTC),
    )


async def publish(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
) -> VersionOut:
    """Publish through the gate. A draft is checked against the live version; an earlier
    version (a rollback) is not — a rollback must stay possible during an incident. The bot's
    row lock is taken first, so the live version cannot change between check and swap."""
    if await bots_repo.lock_bot(session, tenant_id, bot_id) is None:
        raise BotNotFound()
    target = await versions.get_version(session, tenant_id, bot_id, version_id)
    verdict = (
        await evaluate(session, runtime, tenant_id, bot_id, version_id)
        if target.status == "draft"
        else None
    )
    if verdict is not None and verdict.outcome == "blocked":
        raise QualityGateFailed(
            f"The draft passes {verdict.draft.passed} of {verdict.draft.total} golden questions; "
            f"the published version passes {verdict.published.passed if verdict.published else 0}.",
            extra=verdict.model_dump(mode="json"),
        )
    return await versions.publish(
        session, tenant_id, principal, bot_id, version_id, quality_gate=verdict
    )
