"""Channel bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from parley.bots.schemas import Theme
from parley.kit.origins import InvalidOrigin, validate_entry


def _check_origins(value: list[str]) -> list[str]:
    out: list[str] = []
    for entry in value:
        try:
            canonical = validate_entry(entry)
        except InvalidOrigin as exc:
            raise ValueError(str(exc)) from exc
        if canonical not in out:
            out.append(canonical)
    return out


class WidgetChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["widget"]
    bot_id: uuid.UUID
    name: str = Field(default="Website widget", min_length=1, max_length=120)
    allowed_origins: list[str] = Field(min_length=1, max_length=50)
    theme: Theme | None = None
    voice: bool = Field(default=False, description="Show the push-to-talk button (SPEC C12).")

    _origins = field_validator("allowed_origins")(_check_origins)


def _check_url(value: str | None) -> str | None:
    """An absolute http(s) URL without credentials; where it points is checked when it is
    called (the SSRF guard in `kit.http.fetch`)."""
    if value is None:
        return None
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise ValueError("not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http or https URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not allowed")
    if parts.fragment:
        raise ValueError("fragments are not allowed")
    return text


class TelegramConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bot_token: str = Field(
        min_length=3,
        max_length=200,
        pattern=r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,150}$",
        description="The token @BotFather gave you (stored encrypted, never shown again).",
    )
    api_base_url: str | None = Field(
        default=None, max_length=500, description="Bot API base URL (default api.telegram.org)."
    )

    _url = field_validator("api_base_url")(_check_url)


class TelegramChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["telegram"]
    bot_id: uuid.UUID
    name: str = Field(default="Telegram", min_length=1, max_length=120)
    config: TelegramConfig


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    callback_url: str = Field(
        min_length=8, max_length=2000, description="Where replies are POSTed, signed."
    )

    _url = field_validator("callback_url")(_check_url)


class WebhookChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook"]
    bot_id: uuid.UUID
    name: str = Field(default="Webhook", min_length=1, max_length=120)
    config: WebhookConfig


ChannelCreate = Annotated[
    WidgetChannelCreate | TelegramChannelCreate | WebhookChannelCreate,
    Field(discriminator="type"),
]


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=120)
    bot_id: uuid.UUID | None = None
    allowed_origins: list[str] | None = Field(default=None, min_length=1, max_length=50)
    theme: Theme | None = None
    voice: bool | None = Field(default=None, description="Widget: push-to-talk on or off.")

    _origins = field_validator("allowed_origins")(
        lambda v: _check_origins(v) if v is not None else None
    )


class ChannelOut(BaseModel):
    id: uuid.UUID
    type: str
    bot_id: uuid.UUID
    name: str
    widget_key: str | None
    allowed_origins: list[str]
    theme: Theme
    config: dict[str, Any] = Field(
        default_factory=dict, description="Non-secret settings (callback_url, api_base_url)."
    )
    inbound_path: str | None = Field(
        default=None, description="Where the channel receives deliveries (telegram, webhook)."
    )
    secret_rotation_ends_at: datetime | None = Field(
        default=None,
        description="After a secret rotation: until when the previous secret still verifies.",
    )
    created_at: datetime
    updated_at: datetime


class ChannelCreated(ChannelOut):
    webhook_secret: str | None = Field(
        default=None,
        description="Shown once: Telegram's secret token, or the webhook channel's whsec_ key.",
    )


class InboundEventOut(BaseModel):
    """One delivery a channel received and how far its processing got (no message text: the
    conversation holds that)."""

    id: uuid.UUID
    status: Literal["received", "processing", "done", "ignored", "failed"]
    dedupe_key: str = Field(description="Telegram update_id, or the webhook-id.")
    external_user_id: str
    conversation_id: uuid.UUID | None
    user_message_id: uuid.UUID | None
    reply_message_id: uuid.UUID | None
    reply_sent_at: datetime | None
    attempts: int
    error: str | None
    created_at: datetime
    processed_at: datetime | None


class InboundAccepted(BaseModel):
    ok: bool = True
    status: Literal["accepted", "duplicate", "ignored"]


class TelegramState(BaseModel):
    """What Telegram says of the channel's webhook, asked when shown."""

    reachable: bool = Field(description="Telegram answered.")
    webhook_url: str | None = None
    points_here: bool = Field(default=False, description="The webhook is this channel's.")
    pending_updates: int = 0
    error: str | None = Field(default=None, description="Telegram's last delivery error.")


class ChannelSecretRotate(BaseModel):
    grace_seconds: int | None = Field(
        default=None,
        ge=0,
        le=604_800,
        description="How long the previous secret keeps verifying (0: stops at once, for a "
        "leaked secret); default PARLEY_WEBHOOK_ROTATION_WINDOW_SECONDS (24 h).",
    )


class ChannelSecretRotated(BaseModel):
    """A webhook channel's new inbound secret, shown once."""

    id: uuid.UUID
    webhook_secret: str = Field(description="The new whsec_ key; shown only in this answer.")
    rotation_ends_at: datetime | None = Field(
        description="Until when the previous secret still verifies (null: it stopped at once)."
    )
