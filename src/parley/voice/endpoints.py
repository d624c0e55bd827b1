"""`POST /v1/widget/voice` (the widget's voice turn) and the workspace's voice settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import (
    Conflict,
    Forbidden,
    InvalidToken,
    NotFound,
    TooManyRequests,
    Unprocessable,
    merge_responses,
)
from parley.kit.runtime import get_runtime
from parley.kit.sse import SSE_HEADERS
from parley.voice import service
from parley.voice.errors import (
    AudioTooLarge,
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    NothingHeard,
    SpeechUnavailable,
    UnsupportedAudio,
    VoiceDisabled,
    VoiceError,
)
from parley.voice.schemas import VoiceWorkspaceSettings, VoiceWorkspaceUpdate
from parley.widget.auth import OriginNotAllowed, WidgetVisitor

router = APIRouter(tags=["voice"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
Admin = Annotated[TenantScope, tenant_access("admin", "admin")]
Member = Annotated[TenantScope, tenant_access("viewer", "bots:read")]


class UploadIncomplete(VoiceError):
    status = 400
    code = "upload_incomplete"
    title = "The upload ended before the audio was complete"


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect as exc:
        raise UploadIncomplete() from exc


@router.post(
    "/v1/widget/voice",
    status_code=status.HTTP_201_CREATED,
    summary="A voice turn: the body is the recording (webm, ogg, wav…); the answer streams as "
    "SSE with the transcript, the reply text and the reply's speech",
    responses={
        **merge_responses(
            InvalidToken,
            OriginNotAllowed,
            Conflict,
            TooManyRequests,
            Unprocessable,
            VoiceDisabled,
            EmptyAudio,
            CorruptAudio,
            NothingHeard,
            AudioTooLarge,
            AudioTooLong,
            UnsupportedAudio,
            SpeechUnavailable,
            UploadIncomplete,
        ),
        201: {
            "description": "SSE: `transcript`, `reply.delta`, `audio` (base64 WAV per sentence), "
            "`reply.completed`, `voice.completed`, or `error` (docs/voice.md).",
            "content": {"text/event-stream": {}},
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                m: {"schema": {"type": "string", "format": "binary"}}
                for m in ("audio/webm", "audio/ogg", "audio/wav", "audio/mp4", "audio/mpeg")
            },
        }
    },
)
async def voice_turn(
    request: Request, caller: WidgetVisitor, idempotency_key: IdempotencyKey = None
) -> StreamingResponse:
    runtime = get_runtime(request)
    turn = await service.start_widget_turn(
        runtime, caller, _body(request), request.headers.get("content-type"), idempotency_key
    )
    return StreamingResponse(
        service.stream_widget_turn(runtime, turn),
        status_code=201,
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.get(
    "/v1/tenants/{tenant_id}/voice",
    response_model=VoiceWorkspaceSettings,
    summary="The workspace's voice settings and this month's `voice_seconds`",
    responses=merge_responses(NotFound, Forbidden),
)
async def get_settings(scope: Member) -> VoiceWorkspaceSettings:
    return await service.settings(scope.session, scope.tenant_id)


@router.put(
    "/v1/tenants/{tenant_id}/voice",
    response_model=VoiceWorkspaceSettings,
    summary="Turn keeping visitors' recordings on or off",
    responses=merge_responses(NotFound, Forbidden, Unprocessable),
)
async def put_settings(scope: Admin, body: VoiceWorkspaceUpdate) -> VoiceWorkspaceSettings:
    return await service.update_settings(
        scope.session, scope.tenant_id, body, actor=scope.principal.actor
    )
