"""Channel ingress answered ahead of the FastAPI stack (SPEC P7).

`POST /v1/channels/{channel_id}/telegram` and `…/inbound` are the busiest public routes and
the simplest: headers in, bytes in, one of three fixed JSON bodies out. Going through
routing, dependency solving and five middlewares cost about half of each delivery's CPU, so
this outermost middleware answers them itself and keeps what those layers gave them: the
body limit (here the tighter inbound one, enforced while the body streams), the request and
operation id headers and the trace id in logs and problem bodies, the security headers,
the HTTP metrics under the route template, and RFC 9457 problems for every refusal. Anything
else, including a malformed channel id or another method, goes on to the full application,
where the same routes stay registered for the OpenAPI document.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING

import structlog

from parley.channels import ingress
from parley.channels.schemas import InboundAccepted
from parley.kit.errors import PROBLEM_JSON, ParleyError, problem_document
from parley.kit.headers import API_CSP, SECURITY_HEADERS
from parley.kit.metrics import HTTP_LATENCY, HTTP_REQUESTS, INBOUND_RECEIVED
from parley.kit.requestid import bind_trace_id, id_headers, trace_id_from_headers, unbind_trace_id

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from parley.kit.runtime import Runtime

log = structlog.get_logger(__name__)

_PATH = re.compile(r"/v1/channels/([0-9A-Fa-f-]{32,36})/(telegram|inbound)")
_KIND = {"telegram": "telegram", "inbound": "webhook"}
_TEMPLATE = {
    "telegram": "/v1/channels/{channel_id}/telegram",
    "inbound": "/v1/channels/{channel_id}/inbound",
}
# The headers each route reads, with the length past which a value counts as absent (the
# delivery then fails its check like one without it).
_WANTED = {
    b"traceparent": 512,
    b"x-request-id": 512,
    b"x-operation-id": 512,
    b"content-length": 20,
    b"x-telegram-bot-api-secret-token": 256,
    b"webhook-id": 255,
    b"webhook-timestamp": 20,
    b"webhook-signature": 2000,
}
_JSON = b"application/json"
_FIXED = [*SECURITY_HEADERS, API_CSP]
ANSWERS = {
    outcome: InboundAccepted(status=outcome).model_dump_json().encode()
    for outcome in ("accepted", "duplicate", "ignored")
}


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


class IngressFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        try:
            channel_id = uuid.UUID(match.group(1))
        except ValueError:
            await self.app(scope, receive, send)  # FastAPI answers a bad id with its 422
            return
        await self._handle(scope, receive, send, channel_id, match.group(2))

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, channel_id: uuid.UUID, route: str
    ) -> None:
        start = time.perf_counter()
        headers: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            limit = _WANTED.get(name)
            if limit is not None and len(value) <= limit:
                headers[name] = value.decode("latin-1")
        trace_id = trace_id_from_headers(headers.get(b"traceparent"), headers.get(b"x-request-id"))
        token = bind_trace_id(trace_id)
        status = 500
        try:
            runtime: Runtime = scope["app"].state.runtime
            kind = _KIND[route]
            try:
                body = await _read_body(runtime, receive, headers.get(b"content-length"), kind)
                outcome = await _dispatch(runtime, channel_id, route, headers, body)
                status, content, media, extra = 200, ANSWERS[outcome], _JSON, []
            except _Disconnected:
                return
            except ParleyError as exc:
                status, content, media = exc.status, _problem(scope, exc), PROBLEM_JSON.encode()
                extra = [(k.lower().encode("latin-1"), v.encode()) for k, v in exc.headers.items()]
            except Exception:
                log.exception("http.unhandled_error", path=scope["path"])
                status, media, extra = 500, PROBLEM_JSON.encode(), []
                content = json.dumps(
                    problem_document(
                        status=500,
                        code="internal_error",
                        title="Internal server error",
                        detail="Something went wrong on our side; the trace_id identifies it "
                        "in our logs.",
                        instance=scope["path"],
                    )
                ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", media),
                        (b"content-length", str(len(content)).encode()),
                        *extra,
                        *_FIXED,
                        *id_headers(trace_id, headers.get(b"x-operation-id")),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": content})
        finally:
            unbind_trace_id(token)
            template = _TEMPLATE[route]
            HTTP_REQUESTS.labels(template, "POST", str(status)).inc()
            HTTP_LATENCY.labels(template, "POST").observe(time.perf_counter() - start)


async def _read_body(runtime: Runtime, receive: Receive, declared: str | None, kind: str) -> bytes:
    """The whole body, refused as soon as it is known to pass the inbound limit (from
    Content-Length, else while it streams), so a huge body is never buffered."""
    limit = runtime.settings.parley_inbound_max_body_bytes
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        _too_large(kind, f"The delivery is {declared} bytes; the limit is {limit}.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            _too_large(kind, f"The delivery is more than {limit} bytes; the limit is {limit}.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(kind: str, detail: str) -> None:
    INBOUND_RECEIVED.labels(kind, "refused").inc()
    raise ingress.InboundTooLarge(detail)


async def _dispatch(
    runtime: Runtime,
    channel_id: uuid.UUID,
    route: str,
    headers: dict[bytes, str],
    body: bytes,
) -> ingress.Outcome:
    if route == "telegram":
        secret = headers.get(b"x-telegram-bot-api-secret-token")
        return await ingress.receive_telegram(runtime, channel_id, secret, body)
    return await ingress.receive_webhook(
        runtime,
        channel_id,
        headers.get(b"webhook-id"),
        headers.get(b"webhook-timestamp"),
        headers.get(b"webhook-signature"),
        body,
    )


def _problem(scope: Scope, exc: ParleyError) -> bytes:
    return json.dumps(
        problem_document(
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            instance=scope["path"],
            extra=exc.extra,
        )
    ).encode()
