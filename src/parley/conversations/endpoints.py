"""`/v1/tenants/{tenant_id}/conversations` and `/inbox`: the staff side of conversations
(docs/inbox.md). Readers see; agents (and every role above) answer and change status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from parley.auth.dependencies import TenantScope, tenant_access
from parley.conversations import operator_reply as reply
from parley.conversations import repository as repo
from parley.conversations import service
from parley.conversations.events import Pending, inbox_stream
from parley.conversations.schemas import (
    AssignRequest,
    ConversationDetail,
    ConversationSummary,
    InboxSettings,
    NoteCreate,
    NoteOut,
    OperatorReply,
    TranscriptMessage,
)
from parley.kit.db import UserId
from parley.kit.errors import Conflict, Forbidden, NotFound, Unprocessable, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from parley.kit.runtime import get_runtime
from parley.kit.sse import SSE_HEADERS

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}",
    tags=["conversations"],
    responses=merge_responses(NotFound, Forbidden),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "conversations:read")]
Agent = Annotated[TenantScope, tenant_access("agent", "conversations:write")]
Admin = Annotated[TenantScope, tenant_access("admin", "admin")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
Tag = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\s/][^/]*$")]


def _flush_after_commit(background: BackgroundTasks, request: Request, pending: Pending) -> None:
    background.add_task(pending.flush, get_runtime(request))


@router.get(
    "/conversations",
    response_model=Page[ConversationSummary],
    summary="List and search conversations across channels, newest first",
)
async def list_conversations(
    scope: Reader,
    channel: Annotated[Literal["widget", "telegram", "webhook", "api"] | None, Query()] = None,
    channel_id: uuid.UUID | None = None,
    bot_id: uuid.UUID | None = None,
    handoff_status: Annotated[
        Literal["bot", "waiting", "assigned", "resolved"] | None, Query(alias="status")
    ] = None,
    assignee_id: Annotated[
        str | None, Query(description="A member's id, `me`, or `none` (unassigned).")
    ] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="Started at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Started before.")] = None,
    feedback: Literal["up", "down"] | None = None,
    unanswered: Annotated[
        bool, Query(description="The bot gave its fallback answer at least once.")
    ] = False,
    q: Annotated[
        str | None, Query(max_length=200, description="Full-text search over the messages.")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[ConversationSummary]:
    assignee: uuid.UUID | None = None
    if assignee_id == "me":
        assignee = scope.principal.user_id or uuid.UUID(int=0)
    elif assignee_id not in (None, "none"):
        try:
            assignee = uuid.UUID(str(assignee_id))
        except ValueError as exc:
            raise Unprocessable("assignee_id is a member's id, `me` or `none`.") from exc
    filters = repo.ConversationFilters(
        channel_type=channel,
        channel_id=channel_id,
        bot_id=bot_id,
        handoff_status=handoff_status,
        assignee_id=assignee,
        unassigned=assignee_id == "none",
        tag=tag,
        since=since,
        until=until,
        feedback=feedback,
        unanswered=unanswered,
        q=q.strip() if q and q.strip() else None,
    )
    return await service.list_conversations(scope.session, scope.tenant_id, filters, cursor, limit)


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    summary="A conversation: contact, tags, notes, feedback, timeline and service figures",
)
async def get_conversation(scope: Reader, conversation_id: uuid.UUID) -> ConversationDetail:
    return await service.get_conversation(scope.session, scope.tenant_id, conversation_id)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=Page[TranscriptMessage],
    summary="The transcript, oldest first: citations, feedback, turn ledger, retrieval trace",
)
async def transcript(
    scope: Reader,
    conversation_id: uuid.UUID,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[TranscriptMessage]:
    return await service.transcript(scope.session, scope.tenant_id, conversation_id, cursor, limit)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Reply as a person; reaches the visitor on their channel (Idempotency-Key)",
    responses=merge_responses(Conflict, Unprocessable),
)
async def operator_reply(
    request: Request,
    background: BackgroundTasks,
    scope: Agent,
    conversation_id: uuid.UUID,
    body: OperatorReply,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    pending = Pending()
    message, replayed = await reply.operator_reply(
        scope.session,
        scope.tenant_id,
        scope.principal,
        conversation_id,
        body.content,
        idempotency_key,
        pending,
    )
    _flush_after_commit(background, request, pending)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse({"message": message}, status_code=201, headers=headers)


@router.post(
    "/conversations/{conversation_id}/typing",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Tell the visitor a person is typing (the widget shows it)",
)
async def operator_typing(
    request: Request, background: BackgroundTasks, scope: Agent, conversation_id: uuid.UUID
) -> Response:
    await service.check_conversation(scope.session, scope.tenant_id, conversation_id)
    pending = Pending()
    service.operator_typing(scope.tenant_id, conversation_id, pending)
    _flush_after_commit(background, request, pending)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/conversations/{conversation_id}/assign",
    response_model=ConversationSummary,
    summary="Take (no body), assign or reassign the conversation; the bot stays silent",
    responses=merge_responses(Unprocessable),
)
async def assign(
    request: Request,
    background: BackgroundTasks,
    scope: Agent,
    conversation_id: uuid.UUID,
    body: AssignRequest | None = None,
) -> ConversationSummary:
    pending = Pending()
    out = await service.assign(
        scope.session,
        scope.tenant_id,
        scope.principal,
        conversation_id,
        body.user_id if body else None,
        pending,
    )
    _flush_after_commit(background, request, pending)
    return out


_SUMMARIES = {
    "unassign": "Back to the queue (waiting); the bot stays silent",
    "handback": "Hand back to the bot",
    "resolve": "Resolve (closes the conversation)",
    "reopen": "Reopen a resolved conversation (to the bot)",
}


def _transition_route(name: str) -> None:
    async def route(
        request: Request, background: BackgroundTasks, scope: Agent, conversation_id: uuid.UUID
    ) -> ConversationSummary:
        pending = Pending()
        out = await service.transition(
            scope.session, scope.tenant_id, scope.principal, conversation_id, name, pending
        )
        _flush_after_commit(background, request, pending)
        return out

    route.__name__ = f"conversation_{name}"
    router.add_api_route(
        f"/conversations/{{conversation_id}}/{name}",
        route,
        methods=["POST"],
        response_model=ConversationSummary,
        summary=_SUMMARIES[name],
        responses=merge_responses(Conflict),
    )


for _name in service.TRANSITIONS:
    _transition_route(_name)


@router.post(
    "/conversations/{conversation_id}/notes",
    response_model=NoteOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add an internal note (never shown to the visitor)",
)
async def add_note(scope: Agent, conversation_id: uuid.UUID, body: NoteCreate) -> NoteOut:
    return await service.add_note(
        scope.session, scope.tenant_id, scope.principal, conversation_id, body.body
    )


@router.delete(
    "/conversations/{conversation_id}/notes/{note_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a note",
)
async def delete_note(scope: Agent, conversation_id: uuid.UUID, note_id: uuid.UUID) -> Response:
    await service.delete_note(
        scope.session, scope.tenant_id, scope.principal, conversation_id, note_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/conversations/{conversation_id}/tags/{tag}",
    response_model=list[str],
    summary="Tag the conversation (idempotent)",
    responses=merge_responses(Unprocessable),
)
async def add_tag(scope: Agent, conversation_id: uuid.UUID, tag: Tag) -> list[str]:
    return await service.add_tag(
        scope.session, scope.tenant_id, scope.principal, conversation_id, tag
    )


@router.delete(
    "/conversations/{conversation_id}/tags/{tag}",
    response_model=list[str],
    summary="Remove a tag",
)
async def remove_tag(scope: Agent, conversation_id: uuid.UUID, tag: Tag) -> list[str]:
    return await service.remove_tag(
        scope.session, scope.tenant_id, scope.principal, conversation_id, tag
    )


@router.get(
    "/inbox/events",
    summary="The workspace's live staff stream (SSE; resume with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def inbox_events(
    request: Request,
    scope: Reader,
    follow: Annotated[
        bool, Query(description="false: send what came after Last-Event-ID, then end.")
    ] = True,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> StreamingResponse:
    try:
        last = uuid.UUID(last_event_id) if last_event_id else None
    except ValueError:
        last = None
    user = scope.principal.user_id
    stream = inbox_stream(
        get_runtime(request),
        scope.tenant_id,
        UserId(user) if user is not None and scope.caller.role != "viewer" else None,
        last,
        request.is_disconnected,
        follow,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/inbox/settings", response_model=InboxSettings, summary="Hours and offline message")
async def get_settings(scope: Reader) -> InboxSettings:
    return await service.get_settings(scope.session, scope.tenant_id)


@router.put(
    "/inbox/settings", response_model=InboxSettings, summary="Set hours and offline message"
)
async def put_settings(scope: Admin, body: InboxSettings) -> InboxSettings:
    return await service.put_settings(scope.session, scope.tenant_id, scope.principal, body)
