"""One assistant turn: ledger → prompt → provider stream → stored reply.

The `llm_turns` row keyed by the operation id is claimed before the provider is called, so a
retried operation whose turn already succeeded gets the stored reply and never calls the
provider again. A provider that fails, or stalls between tokens, ends the turn cleanly: the
visitor gets an `error` event and the operation stays retryable.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.bots.schemas import BotConfig
from parley.bots.service import BotNotFound
from parley.conversations import idempotency_keys
from parley.conversations import repository as conv_repo
from parley.conversations.events import inbox_topic, staff_event, topic
from parley.conversations.schemas import Citation, MessageOut, message_json
from parley.kit import telemetry
from parley.kit.db import TenantId, tenant_session
from parley.kit.errors import TenantSuspended
from parley.kit.ids import new_id
from parley.kit.metrics import LLM_ERRORS, LLM_LATENCY, LLM_TOKENS, LLM_TTFT
from parley.kit.runtime import Runtime
from parley.knowledge.grounding import citations_for, passages_for_turn
from parley.llm.base import (
    Passage,
    Provider,
    ProviderError,
    StreamEvent,
    TextDelta,
    TurnRequest,
    Usage,
)
from parley.llm.credentials import ResolvedCredential
from parley.llm.credentials import resolve as resolve_credential
from parley.llm.pricing import cost_usd, price_table
from parley.llm.prompt import history_messages, system_prompt
from parley.llm.registry import provider_for
from parley.llm.resilience import CircuitBreaker, retry_delay
from parley.llm.summary import extend, split_history
from parley.models import BotVersion, Conversation, LlmTurn, Tenant

log = structlog.get_logger(__name__)

TURN_TIMEOUT = 120.0
HISTORY_ROWS = 60  # newest unsummarised messages read for a prompt
TURN_JOB = "chat.turn"  # the job that runs an asynchronously sent message's turn
_CONFIGS_CACHED = 256


@dataclass(frozen=True)
class TurnInput:
    tenant_id: TenantId
    conversation_id: uuid.UUID
    bot_id: uuid.UUID
    user_message_id: uuid.UUID
    user_text: str
    operation_id: uuid.UUID
    idem_scope: str
    idem_key: str
    user_message: dict[str, Any]


@dataclass(frozen=True)
class TurnOutcome:
    reply: dict[str, Any] | None
    error: dict[str, Any] | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


Sink = Callable[[str], Awaitable[None]]


class TurnFailed(Exception):
    def __init__(self, code: str, detail: str, status: int = 502):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status

    def problem(self) -> dict[str, Any]:
        return {
            "type": f"https://parley.dev/problems/{self.code}",
            "title": "The assistant could not answer",
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }


async def _with_stall_timeout(
    events: AsyncIterator[StreamEvent], stall_seconds: float
) -> AsyncIterator[StreamEvent]:
    iterator = aiter(events)
    while True:
        try:
            # `asyncio.timeout`, not `wait_for`: no task per streamed chunk.
            async with asyncio.timeout(stall_seconds):
                event = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise TurnFailed("provider_stalled", "The model stopped answering mid-way.") from exc
        yield event


@dataclass(frozen=True)
class PreparedTurn:
    """What the turn needs, read in the caller's transaction (the one that stored the user
    message), so sending costs one transaction before the provider is called."""

    config: BotConfig
    version_id: uuid.UUID
    history: list[tuple[str, str]]
    stored_reply: dict[str, Any] | None = None  # the turn already succeeded earlier
    credential: ResolvedCredential | None = None  # the tenant's own provider key, if any
    summary: str | None = None  # the rolling summary of turns older than `history`
    summary_upto: uuid.UUID | None = None  # set when this turn extended it: saved with the reply
    has_knowledge: bool = True  # False when the workspace has no indexed chunk: skip retrieval


async def prepare_turn(session: AsyncSession, runtime: Runtime, turn: TurnInput) -> PreparedTurn:
    """Claim the ledger row for the operation and read the published configuration and the
    recent history. If this operation's turn already succeeded, return its stored reply."""
    # One round trip: the published version, the workspace's status, the conversation summary.
    found = (
        await session.execute(
            select(BotVersion, Tenant.status, Conversation.summary, Conversation.summary_upto)
            .join(Tenant, Tenant.id == BotVersion.tenant_id)
            .outerjoin(
                Conversation,
                (Conversation.tenant_id == BotVersion.tenant_id)
                & (Conversation.id == turn.conversation_id),
            )
            .where(
                BotVersion.tenant_id == turn.tenant_id,
                BotVersion.bot_id == turn.bot_id,
                BotVersion.status == "published",
            )
        )
    ).first()
    if found is None:
        raise BotNotFound("This chat's bot no longer exists.")
    version, tenant_status, summary, upto = found
    if tenant_status != "active":
        raise TenantSuspended()
    config = BotConfig.model_validate(version.config)
    claimed = await session.execute(
        insert(LlmTurn)
        .values(
            tenant_id=turn.tenant_id,
            id=new_id(),
            operation_id=turn.operation_id,
            conversation_id=turn.conversation_id,
            bot_version_id=version.id,
            provider=config.provider,
            model=config.model,
            status="running",
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "operation_id"])
        .returning(LlmTurn.id)
    )
    if claimed.scalar_one_or_none() is None:
        existing = (
            await session.execute(
                select(LlmTurn)
                .where(
                    LlmTurn.tenant_id == turn.tenant_id,
                    LlmTurn.operation_id == turn.operation_id,
                )
                .with_for_update()
            )
        ).scalar_one()
        if existing.status == "succeeded" and existing.reply_message_id is not None:
            reply = await conv_repo.get_message(session, turn.tenant_id, existing.reply_message_id)
            if reply is not None:
                reply_json = message_json(reply)
                await idempotency_keys.finish(
                    session,
                    turn.tenant_id,
                    turn.idem_scope,
                    turn.idem_key,
                    state="completed",
                    response={"message": turn.user_message, "reply": reply_json},
                )
                return PreparedTurn(config, version.id, [], reply_json)
        existing.status = "running"
        existing.error = None
    rows = await conv_repo.unsummarised_turns(
        session,
        turn.tenant_id,
        turn.conversation_id,
        upto,
        turn.user_message_id,
        limit=HISTORY_ROWS,
    )
    budget = max(0, runtime.settings.parley_history_budget_chars - len(turn.user_text))
    dropped, kept = split_history([(r, c) for _, r, c in rows], budget)
    if dropped:  # condense what fell out of the budget, once, and keep it
        summary = extend(summary, dropped)
        await conv_repo.save_summary(
            session, turn.tenant_id, turn.conversation_id, summary, rows[len(dropped) - 1][0]
        )
    history = kept
    credential = None
    if config.provider != "extractive":
        credential = await resolve_credential(session, runtime, turn.tenant_id, config.provider)
    return PreparedTurn(config, version.id, history, credential=credential, summary=summary)


def config_for(runtime: Runtime, version_id: uuid.UUID, raw: dict[str, Any]) -> BotConfig:
    """The validated configuration of a bot version. Versions are immutable once published
    (only drafts change, and turns never read drafts), so the cache is keyed by the version id
    the send statement read: correct across processes, with no invalidation to get wrong."""
    cache = runtime.caches.setdefault("bot-configs", {})
    config = cache.get(version_id)
    if config is None:
        if len(cache) >= _CONFIGS_CACHED:
            cache.clear()
        config = cache[version_id] = BotConfig.model_validate(raw)
    return cast(BotConfig, config)


async def prepared_from_row(
    runtime: Runtime, turn: TurnInput, found: dict[str, Any]
) -> PreparedTurn:
    """The `PreparedTurn` from what `parley_chat_send` read in its one round trip. A rolling
    summary extended here is stored by `parley_chat_finish`, with the reply."""
    version_id = uuid.UUID(str(found["version_id"]))
    config = config_for(runtime, version_id, found["config"])
    summary: str | None = found["summary"]
    rows = [(uuid.UUID(i), str(r), str(c)) for i, r, c in found["history"]]
    budget = max(0, runtime.settings.parley_history_budget_chars - len(turn.user_text))
    dropped, kept = split_history([(r, c) for _, r, c in rows], budget)
    upto = None
    if dropped:  # condense what fell out of the budget; stored with the reply, off the clock
        summary = extend(summary, dropped)
        upto = rows[len(dropped) - 1][0]
    credential = None
    stored = found["credential"]
    if config.provider != "extractive" and stored is not None:
        credential = ResolvedCredential(
            runtime.keyring.decrypt(stored["api_key_encrypted"]), stored["base_url"]
        )
    return PreparedTurn(
        config,
        version_id,
        kept,
        credential=credential,
        summary=summary,
        summary_upto=upto,
        has_knowledge=bool(found.get("has_knowledge", True)),
    )


async def finish_stored_reply(runtime: Runtime, turn: TurnInput, reply: dict[str, Any]) -> None:
    """The operation's turn succeeded before but its key was left open (the process died in
    between): close the key with the stored answer."""
    async with tenant_session(runtime.db, turn.tenant_id) as session:
        await idempotency_keys.finish(
            session,
            turn.tenant_id,
            turn.idem_scope,
            turn.idem_key,
            state="completed",
            response={"message": turn.user_message, "reply": reply},
        )


@dataclass
class _Streamed:
    parts: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    ttft: float | None = None
    model: str | None = None


def breaker_for(runtime: Runtime, provider: Provider, model: str) -> CircuitBreaker:
    return runtime.client(
        f"breaker:{provider.name}:{id(provider)}:{model}",
        lambda: CircuitBreaker(
            failure_threshold=runtime.settings.parley_llm_breaker_failures,
            reset_after=runtime.settings.parley_llm_breaker_reset_seconds,
        ),
    )


async def _stream_with_fallbacks(
    runtime: Runtime,
    provider: Provider,
    request: TurnRequest,
    config: BotConfig,
    out: _Streamed,
    on_delta: Sink,
    started: float,
) -> None:
    """Try the model, then each fallback model. Each gets `parley_llm_retries` extra attempts on
    retryable errors, with jittered backoff, as long as no token has reached the visitor (after
    that nothing can be taken back, so the failure is final). A model whose circuit is open is
    skipped."""
    last: Exception = TurnFailed("provider_unavailable", "The model is unavailable right now.", 503)
    for model in [config.model, *config.fallback_models]:
        breaker = breaker_for(runtime, provider, model)
        if not breaker.allow():
            last = TurnFailed(
                "provider_unavailable", "The model is unavailable right now; please try again.", 503
            )
            continue
        for attempt in range(runtime.settings.parley_llm_retries + 1):
            try:
                attrs = {"llm.provider": provider.name, "llm.model": model, "llm.attempt": attempt}
                with telemetry.span(f"llm {provider.name}", attrs):
                    events = provider.stream(replace(request, model=model))
                    stall = runtime.settings.parley_llm_stall_seconds
                    async for event in _with_stall_timeout(events, stall):
                        if isinstance(event, TextDelta):
                            if out.ttft is None:
                                out.ttft = time.perf_counter() - started
                            out.parts.append(event.text)
                            await on_delta(event.text)
                        else:
                            out.usage = event
                breaker.record_success()
                out.model = model
                return
            except (ProviderError, TurnFailed) as exc:
                last = exc
                if out.parts:
                    breaker.record_failure()
                    raise
                if isinstance(exc, ProviderError) and not exc.retryable:
                    break
                if attempt < runtime.settings.parley_llm_retries:
                    await asyncio.sleep(retry_delay(attempt))
        breaker.record_failure()
        log.info(
            "llm.model_failed", provider=provider.name, model=model, reason=type(last).__name__
        )
    raise last


async def run_turn(
    runtime: Runtime, turn: TurnInput, prepared: PreparedTurn, on_delta: Sink
) -> TurnOutcome:
    """Run the turn; never raises. An unexpected failure (a provider SDK surprise, the database
    going away while storing the reply) ends as an `internal_error` outcome and leaves the
    operation retryable, instead of a broken stream and an idempotency key stuck in progress
    until its lease runs out."""
    try:
        return await _run_turn(runtime, turn, prepared, on_delta)
    except Exception as exc:
        log.exception(
            "llm.turn_crashed",
            tenant_id=str(turn.tenant_id),
            operation_id=str(turn.operation_id),
            error=type(exc).__name__,
        )
        try:
            async with tenant_session(runtime.db, turn.tenant_id) as session:
                await session.execute(
                    update(LlmTurn)
                    .where(
                        LlmTurn.tenant_id == turn.tenant_id,
                        LlmTurn.operation_id == turn.operation_id,
                        LlmTurn.status == "running",
                    )
                    .values(status="failed", error="internal_error", finished_at=datetime.now(UTC))
                )
                await idempotency_keys.finish(
                    session,
                    turn.tenant_id,
                    turn.idem_scope,
                    turn.idem_key,
                    state="failed",
                    response=None,
                )
        except Exception:  # the lease expiry remains the fallback
            log.warning("llm.turn_crash_not_recorded", operation_id=str(turn.operation_id))
        failure = TurnFailed("internal_error", "Something went wrong; please try again.", 500)
        return TurnOutcome(None, failure.problem())


async def _run_turn(
    runtime: Runtime, turn: TurnInput, prepared: PreparedTurn, on_delta: Sink
) -> TurnOutcome:
    started = time.perf_counter()
    if prepared.stored_reply is not None:
        return TurnOutcome(prepared.stored_reply, None)
    config, history = prepared.config, prepared.history
    passages: list[Passage] = []
    if prepared.has_knowledge:  # ground the answer; the retrieval log is written here too
        passages = await passages_for_turn(
            runtime,
            turn.tenant_id,
            config=config,
            query=turn.user_text,
            bot_id=turn.bot_id,
            bot_version_id=prepared.version_id,
            conversation_id=turn.conversation_id,
            message_id=turn.user_message_id,
            operation_id=turn.operation_id,
        )
    request = TurnRequest(
        system=system_prompt(config.instructions, passages, prepared.summary),
        messages=history_messages(history, turn.user_text, budget_chars=10**9),
        model=config.model,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        fallback_text=config.fallback_text,
        passages=passages,
    )
    provider = provider_for(config.provider, runtime, prepared.credential)

    # 2. Stream from the provider: retries and fallback models until the first token.
    streamed = _Streamed()
    try:
        async with asyncio.timeout(TURN_TIMEOUT):
            await _stream_with_fallbacks(
                runtime, provider, request, config, streamed, on_delta, started
            )
    except (ProviderError, TurnFailed, TimeoutError) as exc:
        failure = (
            exc
            if isinstance(exc, TurnFailed)
            else TurnFailed(
                "provider_error" if isinstance(exc, ProviderError) else "provider_timeout",
                "The model is unavailable right now; please try again.",
            )
        )
        LLM_ERRORS.labels(config.provider).inc()
        log.warning(
            "llm.turn_failed",
            tenant_id=str(turn.tenant_id),
            operation_id=str(turn.operation_id),
            provider=config.provider,
            reason=failure.code,
        )
        async with tenant_session(runtime.db, turn.tenant_id) as session:
            await session.execute(
                update(LlmTurn)
                .where(
                    LlmTurn.tenant_id == turn.tenant_id,
                    LlmTurn.operation_id == turn.operation_id,
                )
                .values(
                    status="failed",
                    error=failure.code,
                    latency_ms=int((time.perf_counter() - started) * 1000),
                    finished_at=datetime.now(UTC),
                )
            )
            await idempotency_keys.finish(
                session,
                turn.tenant_id,
                turn.idem_scope,
                turn.idem_key,
                state="failed",
                response=None,
            )
            # Off the time-to-first-token path: the conversation's activity time.
            await conv_repo.touch_conversation(session, turn.tenant_id, turn.conversation_id)
        return TurnOutcome(None, failure.problem())

    # 3. Store the reply, close the ledger and the idempotency key together.
    parts, usage, ttft = streamed.parts, streamed.usage, streamed.ttft
    text = "".join(parts).strip() or config.fallback_text
    latency = time.perf_counter() - started
    now = datetime.now(UTC)
    reply_json = MessageOut(
        id=new_id(),
        conversation_id=turn.conversation_id,
        role="assistant",
        content=text,
        citations=[Citation.model_validate(c) for c in citations_for(passages, text)],
        created_at=now,
    ).model_dump(mode="json")
    model = streamed.model or config.model
    await conv_repo.chat_finish(
        runtime.db,
        turn.tenant_id,
        operation_id=turn.operation_id,
        scope=turn.idem_scope,
        key=turn.idem_key,
        conversation_id=turn.conversation_id,
        reply=reply_json,
        version_id=prepared.version_id,
        now=now,
        model=model,
        cost_usd=cost_usd(
            price_table(runtime.settings.parley_llm_prices),
            config.provider,
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
        ),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        latency_ms=int(latency * 1000),
        ttft_ms=int(ttft * 1000) if ttft is not None else None,
        response={"message": turn.user_message, "reply": reply_json},
        summary=prepared.summary if prepared.summary_upto is not None else None,
        summary_upto=prepared.summary_upto,
        fallback=text == config.fallback_text,
    )
    LLM_LATENCY.labels(config.provider).observe(latency)
    if ttft is not None:
        LLM_TTFT.labels(config.provider).observe(ttft)
    LLM_TOKENS.labels(config.provider, "prompt").inc(usage.prompt_tokens)
    LLM_TOKENS.labels(config.provider, "completion").inc(usage.completion_tokens)
    await runtime.broker.publish(
        topic(turn.tenant_id, turn.conversation_id),
        {"type": "message.created", "message": reply_json},
    )
    await runtime.broker.publish(
        inbox_topic(turn.tenant_id), staff_event("message.created", reply_json["id"], reply_json)
    )
    return TurnOutcome(reply_json, None, usage.prompt_tokens, usage.completion_tokens)
