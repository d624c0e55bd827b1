"""Request body size limit, enforced while the body streams in (not after buffering it)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException

from parley.kit.errors import PROBLEM_JSON, problem_document

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(max_bytes: int) -> HTTPException:
    return HTTPException(413, f"The request body exceeds {max_bytes} bytes.")


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
        body = json.dumps(
            problem_document(
                status=413,
                code="payload_too_large",
                title="The request body is too large",
                detail=f"The request body exceeds {max_bytes} bytes.",
                instance=scope.get("path", ""),
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

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
