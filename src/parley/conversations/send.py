"""Sending a visitor's message, for every channel that speaks for a visitor through a token or
a key (the widget, the OpenAI-compatible API, voice): claim the idempotency key and store the
message in one round trip (`parley_chat_send`), then start the assistant turn
(`parley.conversations.turn`), enqueue it, or hold it for a person. The HTTP framing (SSE,
JSON, the compat API's chunks) stays with each surface.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from parley.bots.service import BotNotFound
from parley.conversations import handoff
from parley.conversations import repository as conv_repo
from parley.conversations.events import publish_visitor_message, topic
from parley.conversations.schemas import HandoffOutcome, message_row_json
from parley.conversations.turn import (
    HISTORY_ROWS,
    TURN_JOB,
    TurnInput,
    TurnOutcome,
    finish_stored_reply,
    prepared_from_row,
    run_turn,
)
from parley.kit import idempotency
from parley.kit.db import TenantId
from parley.kit.errors import InvalidToken, NotFound, TenantSuspended
from parley.kit.ids import new_id
from parley.kit.jobs import worker_nudge
from parley.kit.ratelimit import enforce
from parley.kit.runtime import Runtime

WAIT_FOR_FIRST = 10.0  # seconds a duplicate request waits for the first one to finish


class Caller(Protocol):
    """Who sends: the widget's token (`widget.auth.WidgetCaller`) or an API key standing in for
    one. `epoch` is the channel's token epoch at issue, or None when the key is the caller."""

    @property
    def tenant_id(self) -> TenantId: ...

    @property
    def bot_id(self) -> uuid.UUID: ...

    @property
    def conversation_id(self) -> uuid.UUID: ...

    @property
    def visitor_id(self) -> uuid.UUID: ...

    @property
    def epoch(self) -> int | None: ...


class ConversationNotFound(NotFound):
    code = "conversation_not_found"
    title = "Conversation not found"


# --- liveness: a token is only as good as its workspace, channel and allowlist ----------------


def raise_if_not_live(exc: asyncpg.PostgresError) -> None:
    """Map `parley_widget_live`'s refusals (raised by the send and history statements too) to
    the widget's problems; anything else is left to the caller."""
    state = exc.sqlstate
    if state == conv_repo.TENANT_SUSPENDED:
        raise TenantSuspended() from exc
    if state == conv_repo.CONVERSATION_GONE:
        raise ConversationNotFound("This chat no longer exists.") from exc
    if state == conv_repo.TOKEN_REVOKED:
        raise InvalidToken(
            "This widget session was revoked; start a new one.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc


@dataclass
class Started:
    user_message: dict[str, Any]
    deltas: asyncio.Queue[str | None]
    task: asyncio.Task[TurnOutcome]


@dataclass
class Replayed:
    user_message: dict[str, Any]
    reply: dict[str, Any]


@dataclass
class Queued:
    """An asynchronous send: the message is stored and its turn enqueued; the reply arrives
    on the conversation's events stream (and in history). `reply` is set when a replay finds
    the turn already answered."""

    user_message: dict[str, Any]
    operation_id: uuid.UUID
    reply: dict[str, Any] | None = None


@dataclass
class Held:
    """A person handles the conversation (or this message asked for one): the message is
    stored and no turn runs. `handoff.message` is the announcement of a new handoff."""

    user_message: dict[str, Any]
    handoff: HandoffOutcome


_background: set[asyncio.Task[Any]] = set()


async def _check_limits(runtime: Runtime, caller: Caller) -> None:
    settings = runtime.settings
    if settings.parley_rate_limits != "on":
        return
    await enforce(
        runtime.limiter,
        f"widget-msg:v:{caller.visitor_id}",
        settings.parley_widget_messages_per_minute,
        60,
    )
    await enforce(
        runtime.limiter,
        f"widget-msg:t:{caller.tenant_id}",
        settings.parley_tenant_messages_per_minute,
        60,
    )


@dataclass(frozen=True)
class _Claimed:
    outcome: str
    scope: str
    key: str
    found: dict[str, Any]


async def _claim_and_store(
    runtime: Runtime,
    caller: Caller,
    content: str,
    idem_key: str | None,
    scope_prefix: str,
    job: str | None,
    spoken: bool = False,
) -> _Claimed:
    """One round trip (`parley_chat_send`); a duplicate of a request still running waits for
    it a little (synchronous sends), then gives up with 409."""
    await _check_limits(runtime, caller)
    text = content.strip()
    scope = f"{scope_prefix}:{caller.visitor_id}"
    key = idem_key or uuid.uuid4().hex
    req_hash = idempotency.request_hash(str(caller.conversation_id), text)
    op = idempotency.operation_id(caller.tenant_id, scope, key)
    waited = 0.0
    while True:
        try:
            found = await conv_repo.chat_send(
                runtime.db,
                caller.tenant_id,
                scope=scope,
                key=key,
                request_hash=req_hash,
                operation_id=op,
                message_id=new_id(),
                turn_id=new_id(),
                conversation_id=caller.conversation_id,
                bot_id=caller.bot_id,
                content=text,
                now=datetime.now(UTC),
                lease=idempotency.ASYNC_LEASE if job else idempotency.LEASE,
                retention=idempotency.RETENTION,
                history_limit=HISTORY_ROWS,
                job=job,
                epoch=caller.epoch,
            )
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == conv_repo.BOT_NOT_FOUND:
                raise BotNotFound("This chat's bot no longer exists.") from exc
            raise_if_not_live(exc)
            raise
        outcome = str(found["outcome"])
        if spoken and outcome == "new":
            # A voice turn's transcript (SPEC C12). The row is marked with the voice ledger,
            # off the clock (voice/service.py); the JSON says so from the first event on.
            found["message"]["spoken"] = True
        if outcome == "reused":
            raise idempotency.IdempotencyKeyReused()
        if outcome != "in_progress" or job is not None:
            return _Claimed(outcome, scope, key, found)
        # Another request with this key is running: wait for it a little, then give up.
        if waited >= WAIT_FOR_FIRST:
            raise idempotency.IdempotencyInProgress(headers={"Retry-After": "1"})
        await asyncio.sleep(0.1)
        waited += 0.1


async def send_message(
    runtime: Runtime,
    caller: Caller,
    content: str,
    idem_key: str | None,
    *,
    scope_prefix: str = "widget",
    history: list[tuple[str, str]] | None = None,
    spoken: bool = False,
) -> Started | Replayed | Held:
    """Store the user message and start the assistant turn. `history` replaces the stored
    conversation as the prompt's history (the OpenAI-compatible API, whose clients send it);
    `spoken` marks the message as a voice turn's transcript."""
    claimed = await _claim_and_store(runtime, caller, content, idem_key, scope_prefix, None, spoken)
    found = claimed.found
    held = await _held(runtime, caller, claimed)
    if held is not None:
        return held
    if claimed.outcome == "replay":
        response = found["response"]
        return Replayed(response["message"], response["reply"])
    user_json = message_row_json(found["message"])
    turn = TurnInput(
        tenant_id=caller.tenant_id,
        conversation_id=caller.conversation_id,
        bot_id=caller.bot_id,
        user_message_id=uuid.UUID(user_json["id"]),
        user_text=user_json["content"],
        operation_id=uuid.UUID(str(found["operation_id"])),
        idem_scope=claimed.scope,
        idem_key=claimed.key,
        user_message=user_json,
    )
    if claimed.outcome == "stored_reply":  # answered before; the key was left open
        reply_json = message_row_json(found["reply"])
        await finish_stored_reply(runtime, turn, reply_json)
        return Replayed(user_json, reply_json)
    prepared = await prepared_from_row(runtime, turn, found)
    if history is not None:
        prepared = replace(prepared, history=history)
    deltas: asyncio.Queue[str | None] = asyncio.Queue()

    async def on_delta(chunk: str) -> None:
        deltas.put_nowait(chunk)
        # Let the SSE relay write this delta now: a provider whose chunks are already
        # buffered would otherwise be read to the end (and the reply stored) before the
        # visitor saw the first token.
        await asyncio.sleep(0)

    async def run() -> TurnOutcome:
        try:
            return await run_turn(runtime, turn, prepared, on_delta)
        finally:
            deltas.put_nowait(None)

    # The turn runs on its own task: a visitor who disconnects mid-stream still gets the
    # stored reply on reload, and the provider is never called twice for it. It starts
    # before anything else is done for this request: the provider call is on the clock.
    task = asyncio.create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)
    # Let it run now, up to its request to the provider: the response's headers and the
    # first event are then written while the provider works, not before it is asked.
    await asyncio.sleep(0)
    if claimed.outcome == "new":
        await runtime.broker.publish(
            topic(caller.tenant_id, caller.conversation_id),
            {"type": "message.created", "message": user_json},
        )
        await publish_visitor_message(runtime, caller.tenant_id, user_json)
    return Started(user_json, deltas, task)


async def enqueue_message(
    runtime: Runtime, caller: Caller, content: str, idem_key: str | None
) -> Queued:
    """Store the user message and enqueue its turn (`Prefer: respond-async`): one round trip.
    A job runs the turn; the reply is published on the conversation's events stream."""
    claimed = await _claim_and_store(runtime, caller, content, idem_key, "widget", TURN_JOB)
    found = claimed.found
    op = uuid.UUID(str(found["operation_id"]))
    held = await _held(runtime, caller, claimed)
    if held is not None:
        return Queued(
            held.user_message,
            op,
            held.handoff.message.model_dump(mode="json") if held.handoff.message else None,
        )
    if claimed.outcome == "replay":
        response = found["response"]
        return Queued(response["message"], op, response["reply"])
    user_json = message_row_json(found["message"])
    if claimed.outcome == "new":
        worker_nudge(runtime).poke()  # its turn was enqueued without a NOTIFY (migration 0013)
        await runtime.broker.publish(
            topic(caller.tenant_id, caller.conversation_id),
            {"type": "message.created", "message": user_json},
        )
        await publish_visitor_message(runtime, caller.tenant_id, user_json)
    return Queued(user_json, op)


async def _held(runtime: Runtime, caller: Caller, claimed: _Claimed) -> Held | None:
    """The send path's answer when no turn runs: a person holds the conversation, or this
    message asked for one (the phrase rules; then the visitor is told what happens next)."""
    found = claimed.found
    if claimed.outcome == "replay":
        response = found["response"] or {}
        if response.get("reply") is not None or "handling" not in response:
            return None
        status = "waiting" if response["handling"] == "requested" else response["handling"]
        return Held(response["message"], HandoffOutcome.model_validate({"handoff_status": status}))
    if claimed.outcome != "held":
        return None
    user_json = message_row_json(found["message"])
    await runtime.broker.publish(
        topic(caller.tenant_id, caller.conversation_id),
        {"type": "message.created", "message": user_json},
    )
    await publish_visitor_message(runtime, caller.tenant_id, user_json)
    if found["handling"] == "requested":
        out = await handoff.announce_requested(
            runtime, caller.tenant_id, caller.conversation_id, found.get("config"), "phrase"
        )
        return Held(user_json, out)
    return Held(user_json, HandoffOutcome.model_validate({"handoff_status": found["handling"]}))


async def finish_send(
    outcome: Started | Replayed,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """(message, reply, error) of a send whose turn ran (a `Held` send is answered as is)."""
    if isinstance(outcome, Replayed):
        return outcome.user_message, outcome.reply, None
    result = await asyncio.shield(outcome.task)  # a disconnect must not cancel the turn
    return outcome.user_message, result.reply, result.error
