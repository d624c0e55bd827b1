"""Request ids and trace ids.

Each request gets a `trace_id`: the trace id of an incoming W3C `traceparent`, else a sane
`X-Request-ID`, else a fresh one. It is echoed as `X-Request-ID`, bound into every log line of
the request and written into every problem+json body. `X-Operation-Id` is echoed too.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

_trace_id: ContextVar[str] = ContextVar("trace_id", default="")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")


def current_trace_id() -> str:
    value = _trace_id.get()
    if not value:
        value = uuid.uuid4().hex
        _trace_id.set(value)
    return value


def trace_id_from_headers(traceparent: str | None, request_id: str | None) -> str:
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1)
    if request_id and _REQUEST_ID.match(request_id.strip()):
        return request_id.strip()
    return uuid.uuid4().hex


def bind_trace_id(trace_id: str) -> Token[str]:
    """Make `trace_id` the current request's, in problem bodies and in every log line."""
    structlog.contextvars.bind_contextvars(trace_id=trace_id)
    return _trace_id.set(trace_id)


def unbind_trace_id(token: Token[str]) -> None:
    structlog.contextvars.unbind_contextvars("trace_id")
    _trace_id.reset(token)


def id_headers(trace_id: str, operation_id: str | None) -> list[tuple[bytes, bytes]]:
    """The response headers that echo the request's ids (an unsafe operation id is dropped)."""
    out = [(b"x-request-id", trace_id.encode())]
    if operation_id and _REQUEST_ID.match(operation_id):
        out.append((b"x-operation-id", operation_id.encode()))
    return out


class RequestIdMiddleware:
    """Pure ASGI middleware (works for streaming responses too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        trace_id = trace_id_from_headers(headers.get("traceparent"), headers.get("x-request-id"))
        operation_id = headers.get("x-operation-id")
        token = bind_trace_id(trace_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = id_headers(trace_id, operation_id)
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            unbind_trace_id(token)
