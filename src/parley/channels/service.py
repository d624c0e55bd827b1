"""Channels: widget channels (origin allowlist, public widget key), Telegram channels
(`setWebhook` on creation) and signed webhook channels. Secrets are encrypted at rest and
shown once, in the creation answer."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.bots import repository as bots_repo
from parley.bots.schemas import Theme
from parley.bots.service import BotNotFound
from parley.channels import signatures, telegram
from parley.channels.door import channel_keys
from parley.channels.schemas import (
    ChannelCreated,
    ChannelOut,
    ChannelSecretRotate,
    ChannelSecretRotated,
    ChannelUpdate,
    InboundEventOut,
    TelegramChannelCreate,
    TelegramState,
    WebhookChannelCreate,
    WidgetChannelCreate,
)
from parley.kit.db import TenantId
from parley.kit.errors import Conflict, NotFound, ParleyError, Unprocessable
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, page_by_id
from parley.kit.runtime import Runtime
from parley.models import Channel, InboundEvent


class ChannelNotFound(NotFound):
    code = "channel_not_found"
    title = "Channel not found"


log = structlog.get_logger(__name__)


class TelegramRejected(Unprocessable):
    code = "telegram_rejected"
    title = "Telegram refused to set the webhook"


class TelegramUnavailable(ParleyError):
    status = 502
    code = "telegram_unavailable"
    title = "The Telegram Bot API could not be reached"


INBOUND_PATHS = {
    "telegram": "/v1/channels/{id}/telegram",
    "webhook": "/v1/channels/{id}/inbound",
}


def inbound_path(ch: Channel) -> str | None:
    template = INBOUND_PATHS.get(ch.type)
    return template.format(id=ch.id) if template else None


class SecretNotRotatable(Conflict):
    code = "channel_secret_not_rotatable"
    title = "Only a webhook channel's secret rotates here"


def rotation_end(ch: Channel) -> datetime | None:
    """Until when the previous secret verifies; None when there is none or it has expired."""
    end = ch.previous_secret_expires_at
    if ch.previous_secret_encrypted is None or end is None or end <= datetime.now(UTC):
        return None
    return end


def channel_out(ch: Channel) -> ChannelOut:
    return ChannelOut(
        id=ch.id,
        type=ch.type,
        bot_id=ch.bot_id,
        name=ch.name,
        widget_key=ch.widget_key,
        allowed_origins=list(ch.allowed_origins),
        theme=Theme.model_validate(ch.theme or {}),
        config=dict(ch.config or {}),
        inbound_path=inbound_path(ch),
        secret_rotation_ends_at=rotation_end(ch),
        created_at=ch.created_at,
        updated_at=ch.updated_at,
    )


async def _require_bot(session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID) -> None:
    # The bot id comes from the request body: it must be one of this tenant's bots.
    if await bots_repo.published(session, tenant_id, bot_id) is None:
        raise BotNotFound()


async def create_channel(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    body: WidgetChannelCreate | TelegramChannelCreate | WebhookChannelCreate,
    *,
    actor: str,
    request_base_url: str,
) -> ChannelCreated:
    if isinstance(body, WidgetChannelCreate):
        out = await create_widget_channel(session, tenant_id, body, actor=actor)
        return ChannelCreated(**out.model_dump())
    await _require_bot(session, tenant_id, body.bot_id)
    channel_id = new_id()
    if isinstance(body, TelegramChannelCreate):
        # 1-256 characters of [A-Za-z0-9_-], as Telegram requires of a secret_token.
        secret = secrets.token_urlsafe(32)
        config = body.config.model_dump(exclude={"bot_token"}, exclude_none=True)
        base = telegram.base_url(runtime, config)
        public = (runtime.settings.parley_public_url or request_base_url).rstrip("/")
        url = public + INBOUND_PATHS["telegram"].format(id=channel_id)
        try:
            await telegram.set_webhook(runtime, base, body.config.bot_token, url, secret)
        except telegram.TelegramError as exc:
            if exc.retryable:
                raise TelegramUnavailable(exc.description) from exc
            raise TelegramRejected(f"Telegram said: {exc.description}") from exc
        token_encrypted: str | None = runtime.keyring.encrypt(body.config.bot_token)
    else:
        secret = signatures.new_key()
        config = body.config.model_dump()
        token_encrypted = None
    ch = Channel(
        tenant_id=tenant_id,
        id=channel_id,
        type=body.type,
        bot_id=body.bot_id,
        name=body.name,
        allowed_origins=[],
        theme={},
        config=config,
        secret_encrypted=runtime.keyring.encrypt(secret),
        token_encrypted=token_encrypted,
    )
    session.add(ch)
    await session.flush()
    await session.refresh(ch)
    out = channel_out(ch)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="channel.created",
        target_type="channel",
        target_id=ch.id,
        after=out.model_dump(mode="json", exclude={"widget_key"}),
    )
    return ChannelCreated(**out.model_dump(), webhook_secret=secret)


async def create_widget_channel(
    session: AsyncSession, tenant_id: TenantId, body: WidgetChannelCreate, *, actor: str
) -> ChannelOut:
    await _require_bot(session, tenant_id, body.bot_id)
    ch = Channel(
        tenant_id=tenant_id,
        id=new_id(),
        type="widget",
        bot_id=body.bot_id,
        name=body.name,
        widget_key="wk_" + secrets.token_urlsafe(18),
        allowed_origins=body.allowed_origins,
        theme=(body.theme or Theme()).model_dump(exclude_none=True),
        config={"voice": True} if body.voice else {},
    )
    session.add(ch)
    await session.flush()
    await session.refresh(ch)
    out = channel_out(ch)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="channel.created",
        target_type="channel",
        target_id=ch.id,
        after=out.model_dump(mode="json", exclude={"widget_key"}),
    )
    return out


async def _get(session: AsyncSession, tenant_id: TenantId, channel_id: uuid.UUID) -> Channel:
    result = await session.execute(
        select(Channel).where(Channel.tenant_id == tenant_id, Channel.id == channel_id)
    )
    ch = result.scalar_one_or_none()
    if ch is None:
        raise ChannelNotFound()
    return ch


async def get_channel(
    session: AsyncSession, tenant_id: TenantId, channel_id: uuid.UUID
) -> ChannelOut:
    return channel_out(await _get(session, tenant_id, channel_id))


async def list_channels(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[ChannelOut]:
    query = select(Channel).where(Channel.tenant_id == tenant_id).order_by(Channel.id)
    after = after_id(cursor)
    if after is not None:
        query = query.where(Channel.id > after)
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    return page_by_id(rows, limit, channel_out, lambda c: c.id)


def event_out(ev: InboundEvent) -> InboundEventOut:
    return InboundEventOut.model_validate(ev, from_attributes=True)


async def list_events(
    session: AsyncSession,
    tenant_id: TenantId,
    channel_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> Page[InboundEventOut]:
    """The channel's deliveries, oldest first: a delivery log for integrators."""
    await _get(session, tenant_id, channel_id)
    query = (
        select(InboundEvent)
        .where(InboundEvent.tenant_id == tenant_id, InboundEvent.channel_id == channel_id)
        .order_by(InboundEvent.id)
    )
    after = after_id(cursor)
    if after is not None:
        query = query.where(InboundEvent.id > after)
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    return page_by_id(rows, limit, event_out, lambda e: e.id)


async def update_channel(
    session: AsyncSession,
    tenant_id: TenantId,
    channel_id: uuid.UUID,
    body: ChannelUpdate,
    *,
    actor: str,
) -> ChannelOut:
    ch = await _get(session, tenant_id, channel_id)
    before = channel_out(ch).model_dump(mode="json", exclude={"widget_key"})
    if body.bot_id is not None:
        await _require_bot(session, tenant_id, body.bot_id)
        ch.bot_id = body.bot_id
    if body.name is not None:
        ch.name = body.name
    if body.allowed_origins is not None:
        if set(ch.allowed_origins) - set(body.allowed_origins):
            # A removed origin ends the channel's live widget tokens (decision 0019).
            ch.token_epoch += 1
        ch.allowed_origins = body.allowed_origins
    if body.theme is not None:
        ch.theme = body.theme.model_dump(exclude_none=True)
    if body.voice is not None and ch.type == "widget":
        ch.config = {**(ch.config or {}), "voice": body.voice}
    ch.updated_at = datetime.now(UTC)
    await session.flush()
    await session.refresh(ch)
    out = channel_out(ch)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="channel.updated",
        target_type="channel",
        target_id=channel_id,
        before=before,
        after=out.model_dump(mode="json", exclude={"widget_key"}),
    )
    return out


async def rotate_secret(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    channel_id: uuid.UUID,
    body: ChannelSecretRotate,
    *,
    actor: str,
) -> ChannelSecretRotated:
    """A new inbound key for a webhook channel, shown once; the current one keeps verifying
    deliveries for the grace period, so the sender can switch without a refused delivery.
    (A Telegram channel's secret token is Telegram's to send: it changes by adding the
    channel again.) A rotation during a grace period ends the older secret at once."""
    result = await session.execute(
        select(Channel)
        .where(Channel.tenant_id == tenant_id, Channel.id == channel_id)
        .with_for_update()
    )
    ch = result.scalar_one_or_none()
    if ch is None:
        raise ChannelNotFound()
    if ch.type != "webhook" or ch.secret_encrypted is None:
        raise SecretNotRotatable(f"This is a {ch.type} channel.")
    grace = body.grace_seconds
    if grace is None:
        grace = int(runtime.settings.parley_webhook_rotation_window_seconds)
    now = datetime.now(UTC)
    secret = signatures.new_key()
    if grace > 0:
        ch.previous_secret_encrypted = ch.secret_encrypted
        ch.previous_secret_expires_at = now + timedelta(seconds=grace)
    else:
        ch.previous_secret_encrypted = None
        ch.previous_secret_expires_at = None
    ch.secret_encrypted = runtime.keyring.encrypt(secret)
    ch.updated_at = now
    await session.flush()
    # This process takes the new key at once; another sees it on its first delivery signed
    # with it, within the door's RECHECK_SECONDS (decision 0008).
    channel_keys(runtime).forget(channel_id, "webhook")
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="channel.secret_rotated",
        target_type="channel",
        target_id=channel_id,
        after={"rotation_ends_at": ch.previous_secret_expires_at, "grace_seconds": grace},
    )
    return ChannelSecretRotated(id=ch.id, webhook_secret=secret, rotation_ends_at=rotation_end(ch))


async def delete_channel(
    session: AsyncSession,
    tenant_id: TenantId,
    channel_id: uuid.UUID,
    *,
    actor: str,
    runtime: Runtime | None = None,
) -> None:
    ch = await _get(session, tenant_id, channel_id)
    before = channel_out(ch).model_dump(mode="json", exclude={"widget_key"})
    if runtime is not None and ch.type == "telegram" and ch.token_encrypted is not None:
        # Best effort: stop Telegram posting to a URL that will answer 404 from now on.
        try:
            await telegram.call(
                runtime,
                telegram.base_url(runtime, dict(ch.config or {})),
                runtime.keyring.decrypt(ch.token_encrypted),
                "deleteWebhook",
                {},
            )
        except telegram.TelegramError:
            log.warning("channels.delete_webhook_failed", channel_id=str(channel_id))
    await session.delete(ch)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="channel.deleted",
        target_type="channel",
        target_id=channel_id,
        before=before,
    )


async def telegram_state(
    session: AsyncSession, runtime: Runtime, tenant_id: TenantId, channel_id: uuid.UUID
) -> TelegramState:
    """Whether Telegram delivers to this channel: the webhook it has, pending updates and its
    last delivery error, asked of Telegram now (the console's channel page)."""
    ch = await _get(session, tenant_id, channel_id)
    if ch.type != "telegram" or ch.token_encrypted is None:
        raise ChannelNotFound()
    expected = (runtime.settings.parley_public_url or "").rstrip("/")
    try:
        info = await telegram.webhook_info(
            runtime,
            telegram.base_url(runtime, ch.config),
            runtime.keyring.decrypt(ch.token_encrypted),
        )
    except telegram.TelegramError as exc:
        return TelegramState(reachable=False, error=exc.description)
    url = str(info.get("url") or "")
    suffix = INBOUND_PATHS["telegram"].format(id=ch.id)
    return TelegramState(
        reachable=True,
        webhook_url=url or None,
        points_here=url.endswith(suffix) and (not expected or url.startswith(expected)),
        pending_updates=int(info.get("pending_update_count") or 0),
        error=str(info["last_error_message"]) if info.get("last_error_message") else None,
    )
