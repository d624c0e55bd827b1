"""Request body size limit, enforced while the body streams in (not after buffering it)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException

from parley.kit.errors import PROBLEM_JSON, problem_document

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(max_bytes: int) -> HTTPException:
    return HTTPException(413, f"The request body exceeds {max_bytes} bytes.")


async def send_problem(
    scope: Scope,
    send: Send,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    close: bool = False,
) -> None:
    """Answer with a problem+json from ASGI middleware, where there is no Request yet."""
    body = json.dumps(
        problem_document(
            status=status, code=code, title=title, detail=detail, instance=scope.get("path", "")
        )
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """`max_bytes` for every route, except the paths listed in `larger` (file uploads), which
    get their own limit."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: tuple[tuple[str, int], ...] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = tuple((re.compile(pattern), limit) for pattern, limit in larger)

    def _limit(self, path: str) -> int:
        for pattern, limit in self.larger:
            if pattern.fullmatch(path):
                return limit
        return self.max_bytes

    async def _reject(self, scope: Scope, send: Send, max_bytes: int) -> None:
        await send_problem(
            scope,
            send,
            status=413,
            code="payload_too_large",
            title="The request body is too large",
            detail=f"The request body exceeds {max_bytes} bytes.",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(scope.get("path", ""))
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > max_bytes:
                    await self._reject(scope, send, max_bytes)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # FastAPI passes HTTPException through body parsing; the app's handler
                    # renders it as problem+json.
                    raise _too_large(max_bytes)
            return message

        await self.app(scope, limited_receive, send)


class BodyTimedOut(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"The request body did not arrive within {seconds:g} s.")


class BodyReadTimeoutMiddleware:
    """Cut off a request body that trickles in: each chunk must arrive within `seconds` of the
    previous one, or the request ends with `408 request_timeout` (uvicorn has no such limit,
    so a slow client could hold a connection and a task for ever). Once the body is complete,
    `receive` (which then only waits for a disconnect) is passed through untouched."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False
        started = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                raise BodyTimedOut(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, watched_send)
        except BodyTimedOut as exc:
            if started:
                raise
            await send_problem(
                scope,
                send,
                status=408,
                code="request_timeout",
                title="The request body arrived too slowly",
                detail=str(exc.detail),
                close=True,
            )
