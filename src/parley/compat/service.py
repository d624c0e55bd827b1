"""OpenAI-compatible chat on top of the same turn machinery as the widget.

Each API key (and `user` field) is a visitor on the bot's `api` channel, so conversations are
stored like any other channel's. The prompt's history is what the client sends (OpenAI
semantics); client `system`/`developer` messages are dropped — the bot's instructions are the
only system prompt. An `Idempotency-Key` header makes retries safe, as on the widget.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.bots import repository as bots_repo
from parley.compat.schemas import ChatCompletionRequest, ModelCard, ModelList
from parley.conversations import repository as conv_repo
from parley.conversations import send as chat
from parley.conversations.started import start_conversation
from parley.kit.db import TenantId, tenant_session
from parley.kit.errors import Conflict, NotFound, Unprocessable
from parley.kit.ids import new_id
from parley.kit.runtime import Runtime
from parley.kit.security import digest
from parley.models import Channel, Visitor
from parley.widget.auth import WidgetCaller


class ModelNotFound(NotFound):
    code = "model_not_found"
    title = "No bot with this id in the workspace"


class HandedOff(Conflict):
    code = "conversation_handed_off"
    title = "A person handles this conversation; the bot does not answer until it is handed back"


class NoUserMessage(Unprocessable):
    code = "no_user_message"
    title = "The last message must be a non-empty user message"


async def models(runtime: Runtime, tenant_id: TenantId) -> ModelList:
    async with tenant_session(runtime.db, tenant_id) as session:
        rows = await bots_repo.list_published(session, tenant_id, after=None, limit=500)
    return ModelList(
        data=[
            ModelCard(id=str(b.id), created=int(b.created_at.timestamp()), owned_by="parley")
            for b, _ in rows
        ]
    )


async def resolve_caller(
    runtime: Runtime, tenant_id: TenantId, api_key_id: uuid.UUID, body: ChatCompletionRequest
) -> WidgetCaller:
    async with tenant_session(runtime.db, tenant_id) as session:
        return await _resolve(session, tenant_id, api_key_id, body)


async def _resolve(
    session: AsyncSession,
    tenant_id: TenantId,
    api_key_id: uuid.UUID,
    body: ChatCompletionRequest,
) -> WidgetCaller:
    """The bot, its `api` channel, this key's visitor and its open conversation (created on
    first use)."""
    try:
        bot_id = uuid.UUID(body.model)
    except ValueError as exc:
        raise ModelNotFound() from exc
    if await bots_repo.published(session, tenant_id, bot_id) is None:
        raise ModelNotFound()
    channel = (
        await session.execute(
            select(Channel).where(
                Channel.tenant_id == tenant_id, Channel.bot_id == bot_id, Channel.type == "api"
            )
        )
    ).scalar_one_or_none()
    if channel is None:
        channel = Channel(
            tenant_id=tenant_id, id=new_id(), type="api", bot_id=bot_id, name="API", theme={}
        )
        session.add(channel)
        await session.flush()
    token_hash = digest(f"api:{api_key_id}:{body.user or ''}")
    visitor = await conv_repo.visitor_by_token(session, tenant_id, channel.id, token_hash)
    if visitor is None:
        visitor = Visitor(
            tenant_id=tenant_id, id=new_id(), channel_id=channel.id, token_hash=token_hash
        )
        session.add(visitor)
        await session.flush()
    conversation = await conv_repo.latest_open_conversation(session, tenant_id, visitor.id)
    if conversation is None:
        conversation = await start_conversation(
            session, tenant_id, bot_id=bot_id, channel_id=channel.id, visitor_id=visitor.id
        )
    return WidgetCaller(
        tenant_id=tenant_id,
        channel_id=channel.id,
        bot_id=bot_id,
        conversation_id=conversation.id,
        visitor_id=visitor.id,
        origin="",
        expires_at=0,
    )


def split_messages(body: ChatCompletionRequest) -> tuple[str, list[tuple[str, str]]]:
    """(the new user message, the prior turns); client system prompts are ignored."""
    turns = [(m.role, m.text()) for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise NoUserMessage()
    return turns[-1][1][:4000], [(r, t) for r, t in turns[:-1] if t.strip()]


async def complete(
    runtime: Runtime,
    caller: WidgetCaller,
    body: ChatCompletionRequest,
    idem_key: str | None,
    api_key_id: uuid.UUID,
) -> chat.Started | chat.Replayed:
    text, history = split_messages(body)
    outcome = await chat.send_message(
        runtime, caller, text, idem_key, scope_prefix=f"api:{api_key_id}", history=history
    )
    if isinstance(outcome, chat.Held):  # the message is stored; staff see it in the inbox
        raise HandedOff()
    return outcome


def completion_json(model: str, reply: dict[str, Any], usage: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{reply['id']}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply["content"]},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        },
    }


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None) -> bytes:

    payload = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


async def stream(model: str, outcome: chat.Started | chat.Replayed) -> AsyncIterator[bytes]:
    """OpenAI's SSE framing: `data: {chunk}` lines, then `data: [DONE]`."""

    cid = f"chatcmpl-{uuid.uuid4().hex}"
    yield _chunk(cid, model, {"role": "assistant", "content": ""}, None)
    if isinstance(outcome, chat.Replayed):
        yield _chunk(cid, model, {"content": outcome.reply["content"]}, None)
    else:
        while (piece := await outcome.deltas.get()) is not None:
            yield _chunk(cid, model, {"content": piece}, None)
        result = await asyncio.shield(outcome.task)
        if result.reply is None:
            error = result.error or {}
            problem = {"error": {"message": error.get("detail"), "code": error.get("code")}}
            yield f"data: {json.dumps(problem)}\n\n".encode()
            return
    yield _chunk(cid, model, {}, "stop")
    yield b"data: [DONE]\n\n"
