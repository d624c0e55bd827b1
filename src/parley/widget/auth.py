"""The visitor's door: a short-lived widget token (JWT with `kid`) bound to tenant, bot,
channel, conversation, visitor and origin. Every widget call must come from that origin.

Widget tokens never open a console route and console tokens never open a widget route: they
have different audiences and types.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.channels.origins import normalise
from parley.kit.db import TenantId, bind_tenant
from parley.kit.errors import Forbidden, InvalidToken, Unauthorized
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
    raw = request.headers.get("origin")
    return normalise(raw) if raw else None


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
