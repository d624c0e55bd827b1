"""`/v1/compat/*`: OpenAI-compatible models and chat completions, for API keys with `chat`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from parley.auth.access import TenantCaller
from parley.auth.dependencies import api_key_access
from parley.compat import service
from parley.compat.schemas import ChatCompletionRequest, ModelList
from parley.conversations import send as chat
from parley.kit.errors import (
    Forbidden,
    InvalidToken,
    NotFound,
    Unprocessable,
    merge_responses,
    problem_response,
)
from parley.kit.runtime import get_runtime
from parley.kit.sse import SSE_HEADERS

router = APIRouter(
    prefix="/v1/compat",
    tags=["openai-compatible"],
    responses=merge_responses(InvalidToken, Forbidden),
)

ChatKey = Annotated[TenantCaller, api_key_access("chat")]


@router.get("/models", response_model=ModelList, summary="The workspace's bots, as models")
async def list_models(request: Request, caller: ChatKey) -> ModelList:
    return await service.models(get_runtime(request), caller.tenant_id)


@router.post(
    "/chat/completions",
    summary="Chat with a bot (`model` = bot id), streaming or not",
    responses={
        **merge_responses(NotFound, Unprocessable),
        200: {"content": {"application/json": {}, "text/event-stream": {}}},
    },
)
async def chat_completions(
    request: Request,
    caller: ChatKey,
    body: ChatCompletionRequest,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> Any:
    runtime = get_runtime(request)
    key_id = caller.principal.api_key_id
    assert key_id is not None
    chat_caller = await service.resolve_caller(runtime, caller.tenant_id, key_id, body)
    outcome = await service.complete(runtime, chat_caller, body, idempotency_key, key_id)
    if body.stream:
        return StreamingResponse(
            service.stream(body.model, outcome), media_type="text/event-stream", headers=SSE_HEADERS
        )
    _, reply, error = await chat.finish_send(outcome)
    if reply is None:
        err = error or {}
        return problem_response(
            request,
            status=int(err.get("status", 502)),
            code=str(err.get("code", "provider_error")),
            title=str(err.get("title", "The assistant could not answer")),
            detail=str(err.get("detail", "")),
        )
    usage = (0, 0)
    if isinstance(outcome, chat.Started) and outcome.task.done():
        result = outcome.task.result()
        usage = (result.prompt_tokens, result.completion_tokens)
    return JSONResponse(service.completion_json(body.model, reply, usage))
