"""The visitor's door: a short-lived widget token (JWT with `kid`) bound to tenant, bot,
channel, conversation, visitor and origin. Every widget call must come from that origin.

Widget tokens never open a console route and console tokens never open a widget route: they
have different audiences and types.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId, bind_tenant
from parley.kit.errors import Forbidden, InvalidToken, Unauthorized
from parley.kit.origins import normalise
from parley.kit.runtime import Runtime, get_runtime
from parley.kit.security import TokenError

WIDGET_AUDIENCE = "parley:widget"
WIDGET_TYPE = "widget"

bearer = HTTPBearer(auto_error=False, description="The widget session token.")


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"
    title = "This website is not allowed to use this chat widget"


@dataclass(frozen=True)
class WidgetCaller:
    tenant_id: TenantId
    channel_id: uuid.UUID
    bot_id: uuid.UUID
    conversation_id: uuid.UUID
    visitor_id: uuid.UUID
    origin: str
    expires_at: int
    # The channel's token epoch at issue (widget tokens); None for API-key callers (the
    # OpenAI-compatible API), whose liveness is their key's.
    epoch: int | None = None
    token_id: str = ""  # the widget token's `jti` (event-stream slots are counted per token)


def issue_widget_token(
    runtime: Runtime,
    *,
    tenant_id: uuid.UUID,
    channel_id: uuid.UUID,
    bot_id: uuid.UUID,
    conversation_id: uuid.UUID,
    visitor_id: uuid.UUID,
    origin: str,
    ttl_seconds: int,
    epoch: int,
) -> tuple[str, int]:
    return runtime.keyring.issue(
        subject=str(visitor_id),
        audience=WIDGET_AUDIENCE,
        token_type=WIDGET_TYPE,
        ttl_seconds=ttl_seconds,
        claims={
            "tid": str(tenant_id),
            "cid": str(channel_id),
            "bid": str(bot_id),
            "conv": str(conversation_id),
            "org": origin,
            "ep": epoch,
        },
    )


def request_origin(request: Request) -> str | None:
    """The web origin of the page that made this request, from headers a page's script cannot
    set (docs/widget-api.md, "Which website is calling"):

    1. `Origin`, when present: browsers send it on every cross-origin request and on every
       same-origin request but GET/HEAD. (`null`, from sandboxed or file pages, is no origin.)
    2. No `Origin` and `Sec-Fetch-Site: same-origin`: a browser's same-origin GET, so the page
       is on this server's own origin, `scheme://Host`.
    3. No `Origin` and no `Sec-Fetch-*` at all (a browser too old to send them): a `Referer`
       whose origin is this server's own origin says the same.
    Anything else has no origin and is refused where one is needed. A cross-origin request
    can never take branches 2 or 3: it carries `Origin`, and its `Sec-Fetch-Site` says so.
    """
    raw = request.headers.get("origin")
    if raw:
        return normalise(raw)
    own = _own_origin(request)
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return own if site == "same-origin" else None
    referer = request.headers.get("referer")
    if own is not None and referer and _origin_of(referer) == own:
        return own
    return None


def _own_origin(request: Request) -> str | None:
    """This server's origin as the browser addressed it (scheme behind a trusted proxy from
    uvicorn's proxy headers, host from `Host`)."""
    host = request.headers.get("host")
    return normalise(f"{request.url.scheme}://{host}") if host else None


def _origin_of(url: str) -> str | None:

    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return normalise(f"{parts.scheme}://{parts.netloc}") if parts.netloc else None


async def widget_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> WidgetCaller:
    if credentials is None or not credentials.credentials:
        raise Unauthorized(headers={"WWW-Authenticate": "Bearer"})
    runtime = get_runtime(request)
    try:
        claims = runtime.keyring.verify(
            credentials.credentials, audience=WIDGET_AUDIENCE, token_type=WIDGET_TYPE
        )
        caller = WidgetCaller(
            tenant_id=TenantId(uuid.UUID(str(claims["tid"]))),
            channel_id=uuid.UUID(str(claims["cid"])),
            bot_id=uuid.UUID(str(claims["bid"])),
            conversation_id=uuid.UUID(str(claims["conv"])),
            visitor_id=uuid.UUID(str(claims["sub"])),
            origin=str(claims["org"]),
            expires_at=int(claims["exp"]),
            epoch=_epoch(claims.get("ep", 0)),
            token_id=str(claims["jti"]),
        )
    except (TokenError, KeyError, ValueError) as exc:
        raise InvalidToken(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc
    if request_origin(request) != caller.origin:
        raise OriginNotAllowed("The token was issued to another website.")
    request.state.cors_origin = caller.origin
    return caller


def _epoch(value: object) -> int:
    if type(value) is not int:
        raise ValueError("ep")
    return value


WidgetVisitor = Annotated[WidgetCaller, Depends(widget_caller)]


async def bind_widget_tenant(session: AsyncSession, widget_key: str) -> TenantId | None:
    """Resolve a public widget key to its tenant (narrow SECURITY DEFINER lookup) and set the
    tenant context on the session; None when no widget channel has this key."""
    result = await session.execute(text("SELECT parley_widget_tenant(:k)"), {"k": widget_key})
    value = result.scalar_one_or_none()
    if value is None:
        return None
    tenant_id = TenantId(uuid.UUID(str(value)))
    await bind_tenant(session, tenant_id)
    return tenant_id
