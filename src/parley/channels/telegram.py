"""The Telegram Bot API, through the one outbound door (`kit.http.fetch`).

Calls are `POST {base}/bot{token}/{method}` with a JSON body; answers are
`{"ok": true, "result": …}` or `{"ok": false, "error_code", "description", "parameters"?}`.
The token is part of the URL, so URLs are never logged or put in error messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from parley.kit.http import OutboundFailed, OutboundTooLarge, fetch
from parley.kit.runtime import Runtime
from parley.kit.ssrf import UnsafeUrl

MAX_TEXT = 4096  # sendMessage's limit, in characters


class TelegramError(Exception):
    """`retryable`: a 5xx, 429 or network failure (try again later); otherwise Telegram
    refused the call itself (bad token, chat not found, bot blocked)."""

    def __init__(self, description: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class Update:
    """The parts of a Telegram update we act on; None fields mean "not a text message"."""

    update_id: int
    chat_id: int | None
    text: str | None


def base_url(runtime: Runtime, config: dict[str, Any]) -> str:
    return str(config.get("api_base_url") or runtime.settings.parley_telegram_api_base_url)


async def call(
    runtime: Runtime, base: str, token: str, method: str, payload: dict[str, Any]
) -> Any:
    url = f"{base.rstrip('/')}/bot{token}/{method}"
    timeout = runtime.settings.parley_channel_send_timeout_seconds
    try:
        response = await fetch(
            runtime,
            "POST",
            url,
            headers={"Content-Type": "application/json"},
            content=json.dumps(payload).encode(),
            max_bytes=256_000,
            http_timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        )
    except UnsafeUrl as exc:
        raise TelegramError(f"The Bot API URL is refused: {exc.detail}", retryable=False) from exc
    except (OutboundFailed, OutboundTooLarge) as exc:
        raise TelegramError(exc.detail, retryable=True) from exc
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("ok") is True:
        return body.get("result")
    status = response.status_code
    description = "The Bot API gave an unexpected answer."
    if isinstance(body, dict) and isinstance(body.get("description"), str):
        description = body["description"][:200]
    retryable = status >= 500 or status == 429 or not isinstance(body, dict)
    raise TelegramError(description, retryable=retryable, status=status)


async def set_webhook(runtime: Runtime, base: str, token: str, url: str, secret: str) -> None:
    await call(
        runtime,
        base,
        token,
        "setWebhook",
        {"url": url, "secret_token": secret, "allowed_updates": ["message"]},
    )


async def webhook_info(runtime: Runtime, base: str, token: str) -> dict[str, Any]:
    """Telegram's view of the bot's webhook (`getWebhookInfo`): url, pending updates, last
    error."""
    found = await call(runtime, base, token, "getWebhookInfo", {})
    return found if isinstance(found, dict) else {}


async def send_message(runtime: Runtime, base: str, token: str, chat_id: int, text: str) -> Any:
    body = text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
    return await call(runtime, base, token, "sendMessage", {"chat_id": chat_id, "text": body})


def parse_update(body: bytes) -> Update | None:
    """None when the body is not an update at all; an Update otherwise (a non-message or
    non-text update has `chat_id`/`text` None and is acknowledged without processing)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    update_id = data.get("update_id")
    if type(update_id) is not int or update_id < 0:
        return None
    message = data.get("message")
    if not isinstance(message, dict):
        return Update(update_id, None, None)
    chat = message.get("chat")
    text = message.get("text")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if type(chat_id) is not int or not isinstance(text, str) or not text.strip():
        return Update(update_id, None, None)
    return Update(update_id, chat_id, text[:4000])
