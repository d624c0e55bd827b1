"""Bot versions: drafts copied from the published version, atomic publish, rollback by
publishing an earlier version, and diffs. Every change is audited."""

from __future__ import annotations

import difflib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.auth.access import Principal
from parley.bots import repository as repo
from parley.bots.schemas import (
    BotConfig,
    ConfigChanges,
    FieldChange,
    QualityGateResult,
    VersionDiff,
    VersionOut,
)
from parley.bots.service import BotNotFound, _default_model, check_sources
from parley.kit.db import TenantId, tenant_session
from parley.kit.errors import Conflict, NotFound, ParleyError
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, page_by_id
from parley.kit.runtime import Runtime
from parley.llm.base import Passage, ProviderError, TextDelta, TurnRequest, Usage
from parley.llm.credentials import resolve
from parley.llm.prompt import history_messages, system_prompt
from parley.llm.registry import provider_for
from parley.models import BotVersion


class PreviewTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=4000)


class PreviewFailed(ParleyError):
    status = 502
    code = "provider_error"
    title = "The model could not answer"


class VersionNotFound(NotFound):
    code = "version_not_found"
    title = "Bot version not found"


class NotADraft(Conflict):
    code = "version_not_draft"
    title = "Only a draft can be edited; published versions are immutable"


class AlreadyPublished(Conflict):
    code = "version_already_published"
    title = "This version is already the published one"


def version_out(v: BotVersion) -> VersionOut:
    return VersionOut(
        id=v.id,
        bot_id=v.bot_id,
        number=v.number,
        status=v.status,
        config=BotConfig.model_validate(v.config),
        created_at=v.created_at,
        published_at=v.published_at,
        quality_gate=_gate(v),
    )


def _gate(v: BotVersion) -> QualityGateResult | None:
    return QualityGateResult.model_validate(v.quality_gate) if v.quality_gate else None


def _apply(config: dict[str, Any], changes: ConfigChanges) -> dict[str, Any]:
    delta = changes.model_dump(exclude_unset=True, mode="json")
    if "provider" in delta and "model" not in delta:
        delta["model"] = _default_model(delta["provider"])
    return BotConfig.model_validate({**config, **delta}).model_dump(mode="json")


async def _version(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID, version_id: uuid.UUID
) -> BotVersion:
    v = (
        await session.execute(
            select(BotVersion).where(
                BotVersion.tenant_id == tenant_id,
                BotVersion.bot_id == bot_id,
                BotVersion.id == version_id,
            )
        )
    ).scalar_one_or_none()
    if v is None:
        raise VersionNotFound()
    return v


async def create_draft(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    changes: ConfigChanges,
) -> VersionOut:
    if await repo.lock_bot(session, tenant_id, bot_id) is None:
        raise BotNotFound()
    await check_sources(session, tenant_id, changes.knowledge_source_ids)
    current = await repo.published(session, tenant_id, bot_id)
    if current is None:
        raise BotNotFound()
    draft = BotVersion(
        tenant_id=tenant_id,
        id=new_id(),
        bot_id=bot_id,
        number=await repo.next_version_number(session, tenant_id, bot_id),
        status="draft",
        config=_apply(current[1].config, changes),
        created_by=principal.user_id,
        created_at=datetime.now(UTC),
    )
    session.add(draft)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.version.created",
        target_type="bot_version",
        target_id=draft.id,
        before=None,
        after={"bot_id": str(bot_id), "number": draft.number, "config": draft.config},
    )
    return version_out(draft)


async def edit_draft(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
    changes: ConfigChanges,
) -> VersionOut:
    if await repo.lock_bot(session, tenant_id, bot_id) is None:
        raise BotNotFound()
    v = await _version(session, tenant_id, bot_id, version_id)
    if v.status != "draft":
        raise NotADraft()
    await check_sources(session, tenant_id, changes.knowledge_source_ids)
    before = dict(v.config)
    v.config = _apply(v.config, changes)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.version.edited",
        target_type="bot_version",
        target_id=v.id,
        before={"config": before},
        after={"config": v.config},
    )
    return version_out(v)


async def publish(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
    *,
    quality_gate: QualityGateResult | None = None,
) -> VersionOut:
    """Make a draft — or an earlier, archived version (a rollback) — the live one. The bot row
    lock serialises publishes; the swap happens in one transaction, so a turn reads either the
    old or the new configuration, never a mix."""
    if await repo.lock_bot(session, tenant_id, bot_id) is None:
        raise BotNotFound()
    v = await _version(session, tenant_id, bot_id, version_id)
    if v.status == "published":
        raise AlreadyPublished()
    current = await repo.published(session, tenant_id, bot_id)
    previous = current[1].number if current else None
    await repo.archive_published(session, tenant_id, bot_id)
    await session.flush()
    v.status = "published"
    v.published_at = datetime.now(UTC)
    if quality_gate is not None:  # the gate's verdict joins the version's record
        v.quality_gate = quality_gate.model_dump(mode="json")
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.version.published"
        if previous is None or v.number > previous
        else "bot.version.rolled_back",
        target_type="bot",
        target_id=bot_id,
        before={"published_number": previous},
        after={
            "published_number": v.number,
            "version_id": str(v.id),
            **({"quality_gate": quality_gate.outcome} if quality_gate else {}),
        },
    )
    return version_out(v)


async def list_versions(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[VersionOut]:
    if await repo.published(session, tenant_id, bot_id) is None:
        raise BotNotFound()
    query = (
        select(BotVersion)
        .where(BotVersion.tenant_id == tenant_id, BotVersion.bot_id == bot_id)
        .order_by(BotVersion.id)
        .limit(limit + 1)
    )
    after = after_id(cursor)
    if after is not None:
        query = query.where(BotVersion.id > after)
    rows = list((await session.execute(query)).scalars())
    return page_by_id(rows, limit, version_out, lambda v: v.id)


async def get_version(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID, version_id: uuid.UUID
) -> VersionOut:
    return version_out(await _version(session, tenant_id, bot_id, version_id))


async def diff(
    session: AsyncSession,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
    against_id: uuid.UUID,
) -> VersionDiff:
    a = await _version(session, tenant_id, bot_id, against_id)
    b = await _version(session, tenant_id, bot_id, version_id)
    changes = [
        FieldChange(field=k, before=a.config.get(k), after=b.config.get(k))
        for k in sorted(set(a.config) | set(b.config))
        if a.config.get(k) != b.config.get(k)
    ]
    lines = difflib.unified_diff(
        str(a.config.get("instructions", "")).splitlines(),
        str(b.config.get("instructions", "")).splitlines(),
        fromfile=f"v{a.number}",
        tofile=f"v{b.number}",
        lineterm="",
    )
    return VersionDiff(
        version_id=b.id,
        against_id=a.id,
        changes=changes,
        instructions_diff="\n".join(lines),
        quality_gate=_gate(b),
        against_quality_gate=_gate(a),
    )


class PreviewChat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=4000)
    history: list[PreviewTurn] = Field(default_factory=list, max_length=50)


class PreviewReply(BaseModel):
    reply: str
    version_id: uuid.UUID
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class PreviewPlan:
    """A preview ready to run: the version, its provider and the request (built inside the
    caller's transaction; running it needs none, so a stream holds no connection)."""

    bot_id: uuid.UUID
    version_id: uuid.UUID
    version: int
    config: BotConfig
    provider: Any
    request: Any


async def plan_preview(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
    body: PreviewChat,
    passages: Sequence[Passage] = (),
) -> PreviewPlan:

    v = await _version(session, tenant_id, bot_id, version_id)
    config = BotConfig.model_validate(v.config)
    credential = (
        await resolve(session, runtime, tenant_id, config.provider)
        if config.provider != "extractive"
        else None
    )
    request = TurnRequest(
        system=system_prompt(config.instructions, list(passages)),
        messages=history_messages([(t.role, t.content) for t in body.history], body.content),
        model=config.model,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        fallback_text=config.fallback_text,
        passages=list(passages),
    )
    return PreviewPlan(
        bot_id, v.id, v.number, config, provider_for(config.provider, runtime, credential), request
    )


async def _audit_preview(
    session: AsyncSession, tenant_id: TenantId, plan: PreviewPlan, actor: str
) -> None:
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="bot.previewed",
        target_type="bot",
        target_id=plan.bot_id,
        after={"version_id": str(plan.version_id), "version": plan.version},
    )


async def stream_preview(
    runtime: Runtime, tenant_id: TenantId, plan: PreviewPlan, *, actor: str
) -> AsyncIterator[str]:
    """The answer's text as the model writes it; the try is audited once it has answered, in
    a transaction of its own (the stream outlives the request's)."""

    wrote = False
    try:
        async for event in plan.provider.stream(plan.request):
            if isinstance(event, TextDelta) and event.text:
                wrote = True
                yield event.text
    except ProviderError as exc:
        raise PreviewFailed(exc.public_detail) from exc
    if not wrote:
        yield plan.config.fallback_text
    async with tenant_session(runtime.db, tenant_id) as session:
        await _audit_preview(session, tenant_id, plan, actor)


async def preview(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
    body: PreviewChat,
    *,
    actor: str,
    passages: Sequence[Passage] = (),
) -> PreviewReply:
    """Answer with any version — typically a draft — without storing a conversation, so editors
    can try a configuration before publishing it; `passages` ground it as a turn would (the
    console retrieves them first, to show them). The try is audited (`bot.previewed`, no
    text): the console's onboarding ticks "try it" from it."""

    plan = await plan_preview(session, runtime, tenant_id, bot_id, version_id, body, passages)
    parts: list[str] = []
    usage = Usage(0, 0)
    try:
        async for event in plan.provider.stream(plan.request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                usage = event
    except ProviderError as exc:
        raise PreviewFailed(exc.public_detail) from exc
    await _audit_preview(session, tenant_id, plan, actor)
    return PreviewReply(
        reply="".join(parts).strip() or plan.config.fallback_text,
        version_id=plan.version_id,
        provider=plan.config.provider,
        model=plan.config.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
    )
