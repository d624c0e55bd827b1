"""CORS for the widget routes: the channel's allowed origins only, never credentials.

Actual responses carry `Access-Control-Allow-Origin` only when the route verified the origin
(against the channel's allowlist, or as the origin the visitor's token is bound to) and put it
in `request.state.cors_origin`. Preflights cannot carry the token or the widget key, so they
are answered for any origin without credentials; the request that follows is still refused
unless its origin is allowed (see docs/decisions/0004-widget-cors-preflight.md).

One exception: a `429` answered before any origin was verified (the per-address session
limit) is readable by the calling origin, so the widget can say "busy, retrying" instead of
"unavailable". It carries nothing about any channel (decisions/0043-widget-session-429-readable.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/v1/widget/"
ALLOW_HEADERS = b"Authorization, Content-Type, Idempotency-Key, Last-Event-ID, Prefer, X-Request-ID"
EXPOSE_HEADERS = b"X-Request-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"


class WidgetCORSMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if scope["method"] == "OPTIONS" and origin and b"access-control-request-method" in headers:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-allow-methods", b"GET, POST"),
                        (b"access-control-allow-headers", ALLOW_HEADERS),
                        (b"access-control-max-age", b"600"),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def add_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state") or {}
                allowed = state.get("cors_origin")
                extra = [(b"vary", b"Origin")]
                if allowed and origin:
                    extra += [
                        (b"access-control-allow-origin", allowed.encode()),
                        (b"access-control-expose-headers", EXPOSE_HEADERS),
                    ]
                elif origin and origin != b"null" and message["status"] == 429:
                    extra += [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-expose-headers", EXPOSE_HEADERS),
                    ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, add_cors)
