"""`/v1/widget/*`: the public widget API (SPEC C3). Auth is the widget token, not a console
login; CORS follows the channel's allowlist (see `cors.py`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import JSONResponse, Response, StreamingResponse

from parley.conversations import send
from parley.conversations.schemas import HandoffOutcome, MessageOut
from parley.kit.errors import (
    Conflict,
    InvalidToken,
    NotFound,
    TenantSuspended,
    TooManyRequests,
    Unprocessable,
    merge_responses,
    problem_response,
    sql_problem,
)
from parley.kit.pagination import Page
from parley.kit.runtime import get_runtime
from parley.kit.sse import SSE_HEADERS
from parley.widget import service
from parley.widget.auth import OriginNotAllowed, WidgetVisitor, request_origin
from parley.widget.schemas import (
    ContactRequest,
    FeedbackRequest,
    FeedbackResponse,
    QueuedResponse,
    SendRequest,
    SendResponse,
    SessionRequest,
    SessionResponse,
    WhoAmI,
)

router = APIRouter(prefix="/v1/widget", tags=["widget"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


@router.post(
    "/session",
    response_model=SessionResponse,
    status_code=status.HTTP_201_CREATED,
    summary="Start or resume a visitor session (Origin must be on the channel's allowlist)",
    responses=merge_responses(OriginNotAllowed, NotFound, TooManyRequests),
)
async def create_session(request: Request, body: SessionRequest) -> SessionResponse:
    runtime = get_runtime(request)
    origin = request_origin(request)
    ip = request.client.host if request.client else "unknown"
    try:
        result = await service.create_session(runtime, body, origin, ip)
    except Exception as exc:
        # Over a plan limit (checked after the origin was): the widget must read the
        # problem to show the workspace's message, so it carries CORS like a success.
        if sql_problem(exc) is not None:
            request.state.cors_origin = origin
        raise
    request.state.cors_origin = origin
    return result


@router.get(
    "/whoami",
    response_model=WhoAmI,
    summary="Who the widget token says you are",
    responses=merge_responses(InvalidToken, NotFound, TenantSuspended),
)
async def whoami(request: Request, caller: WidgetVisitor) -> WhoAmI:
    return await service.whoami(get_runtime(request), caller)


@router.post(
    "/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=SendResponse,
    summary="Send a message; the reply streams as SSE with `Accept: text/event-stream`, or "
    "arrives on the events stream with `Prefer: respond-async` (202)",
    responses={
        **merge_responses(
            InvalidToken, OriginNotAllowed, NotFound, Conflict, Unprocessable, TooManyRequests
        ),
        201: {
            "description": "The stored message and reply (JSON), or an SSE stream of "
            "`message.created`, `reply.delta`, `reply.completed`, `error` events.",
            "content": {"text/event-stream": {}},
        },
        202: {
            "description": "With `Prefer: respond-async`: the message is stored and its turn "
            "enqueued; the reply arrives on the conversation's events stream and in history.",
            "model": QueuedResponse,
        },
    },
)
async def send_message(
    request: Request,
    caller: WidgetVisitor,
    body: SendRequest,
    idempotency_key: IdempotencyKey = None,
    prefer: Annotated[str | None, Header(max_length=255)] = None,
) -> Any:
    runtime = get_runtime(request)
    if prefer is not None and "respond-async" in prefer.lower():
        queued = await send.enqueue_message(runtime, caller, body.content, idempotency_key)
        return JSONResponse(
            {
                "message": queued.user_message,
                "reply": queued.reply,
                "operation_id": str(queued.operation_id),
            },
            status_code=202,
            headers={"Preference-Applied": "respond-async"},
        )
    outcome = await send.send_message(runtime, caller, body.content, idempotency_key)
    if isinstance(outcome, send.Held) and "text/event-stream" not in request.headers.get(
        "accept", ""
    ):
        said = outcome.handoff.message
        return JSONResponse(
            {
                "message": outcome.user_message,
                "reply": said.model_dump(mode="json") if said is not None else None,
                "handoff_status": outcome.handoff.handoff_status,
                "ask_email": outcome.handoff.ask_email,
            },
            status_code=201,
        )
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            service.stream_send(outcome),
            status_code=201,
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    assert not isinstance(outcome, send.Held)
    message, reply, error = await send.finish_send(outcome)
    if reply is None:
        err = error or {}
        return problem_response(
            request,
            status=int(err.get("status", 502)),
            code=str(err.get("code", "provider_error")),
            title=str(err.get("title", "The assistant could not answer")),
            detail=str(err.get("detail", "")),
        )
    return JSONResponse({"message": message, "reply": reply}, status_code=201)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=Page[MessageOut],
    summary="History of the token's own conversation, oldest first within a page",
    responses=merge_responses(InvalidToken, NotFound, TenantSuspended),
)
async def history(
    request: Request,
    caller: WidgetVisitor,
    conversation_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    before: Annotated[
        uuid.UUID | None, Query(description="`next_cursor` of the previous page")
    ] = None,
) -> Response:
    page = await service.history(get_runtime(request), caller, conversation_id, before, limit)
    # Serialised once, here: returning the model would have FastAPI validate it again.
    return Response(page.model_dump_json(), media_type="application/json")


@router.get(
    "/conversations/{conversation_id}/events",
    summary="Live events of the token's own conversation (SSE; resume with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        **merge_responses(InvalidToken, NotFound, TenantSuspended, TooManyRequests),
    },
)
async def conversation_events(
    request: Request,
    caller: WidgetVisitor,
    conversation_id: uuid.UUID,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> StreamingResponse:
    try:
        last = uuid.UUID(last_event_id) if last_event_id else None
    except ValueError:
        last = None
    stream = await service.events(
        get_runtime(request), caller, conversation_id, last, request.is_disconnected
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post(
    "/messages/{message_id}/feedback",
    response_model=FeedbackResponse,
    summary="Rate an assistant message",
    responses=merge_responses(InvalidToken, NotFound, TenantSuspended),
)
async def feedback(
    request: Request, caller: WidgetVisitor, message_id: uuid.UUID, body: FeedbackRequest
) -> FeedbackResponse:
    return await service.feedback(
        get_runtime(request), caller, message_id, body.rating, body.comment
    )


@router.post(
    "/handoff",
    response_model=HandoffOutcome,
    summary="Ask for a person (the widget's “Talk to a person” button)",
    responses=merge_responses(InvalidToken, NotFound),
)
async def request_handoff(request: Request, caller: WidgetVisitor) -> HandoffOutcome:
    return await service.request_handoff(get_runtime(request), caller)


@router.post(
    "/contact",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Leave an email for the team (offered when nobody can take the conversation now)",
    responses=merge_responses(InvalidToken, Unprocessable),
)
async def leave_contact(request: Request, caller: WidgetVisitor, body: ContactRequest) -> Response:
    await service.leave_contact(get_runtime(request), caller, body.email)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/typing",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="The visitor is typing (shown to staff; not stored)",
    responses=merge_responses(InvalidToken, TooManyRequests),
)
async def visitor_typing(request: Request, caller: WidgetVisitor) -> Response:
    await service.visitor_typing(get_runtime(request), caller)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
