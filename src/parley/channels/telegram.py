"""The Telegram Bot API, through the one outbound door (`kit.http.fetch`).

Calls are `POST {base}/bot{token}/{method}` with a JSON body; answers are
`{"ok": true, "result": …}` or `{"ok": false, "error_code", "description", "parameters"?}`.
The token is part of the URL, so URLs are never logged or put in error messages.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from parley.kit import jsonbody
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
    """The parts of a Telegram update we act on; None fields mean "not a text message" (a
    voice message has `voice_file_id` and no text: it is transcribed when processed)."""

    update_id: int
    chat_id: int | None
    text: str | None
    voice_file_id: str | None = None


def base_url(runtime: Runtime, config: dict[str, Any]) -> str:
    return str(config.get("api_base_url") or runtime.settings.parley_telegram_api_base_url)


async def call(
    runtime: Runtime,
    base: str,
    token: str,
    method: str,
    payload: dict[str, Any] | None,
    *,
    raw: tuple[bytes, str] | None = None,
) -> Any:
    """A Bot API call with a JSON body, or `raw` (body, content type) for uploads."""
    url = f"{base.rstrip('/')}/bot{token}/{method}"
    timeout = runtime.settings.parley_channel_send_timeout_seconds
    content, content_type = raw or (json.dumps(payload).encode(), "application/json")
    try:
        response = await fetch(
            runtime,
            "POST",
            url,
            headers={"Content-Type": content_type},
            content=content,
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
        data = jsonbody.loads(body)
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
    voice = message.get("voice")
    file_id = voice.get("file_id") if isinstance(voice, dict) else None
    if type(chat_id) is int and isinstance(file_id, str) and 0 < len(file_id) <= 255:
        return Update(update_id, chat_id, None, file_id)
    if type(chat_id) is not int or not isinstance(text, str) or not text.strip():
        return Update(update_id, None, None)
    return Update(update_id, chat_id, text[:4000])


def voice_file_id(payload: dict[str, Any]) -> str | None:
    """The voice note of a stored update's message, if it is one."""
    message = payload.get("message")
    voice = message.get("voice") if isinstance(message, dict) else None
    file_id = voice.get("file_id") if isinstance(voice, dict) else None
    return file_id if isinstance(file_id, str) else None


async def download_file(
    runtime: Runtime, base: str, token: str, file_id: str, max_bytes: int
) -> bytes:
    """`getFile`, then `GET {base}/file/bot{token}/{file_path}` (the Bot API's download URL)."""
    found = await call(runtime, base, token, "getFile", {"file_id": file_id})
    path = found.get("file_path") if isinstance(found, dict) else None
    if not isinstance(path, str) or not path or ".." in path:
        raise TelegramError("getFile gave no file_path", retryable=False)
    size = found.get("file_size")
    if isinstance(size, int) and size > max_bytes:
        raise TelegramError("the voice message is larger than allowed", retryable=False)
    timeout = runtime.settings.parley_channel_send_timeout_seconds
    try:
        response = await fetch(
            runtime,
            "GET",
            f"{base.rstrip('/')}/file/bot{token}/{path}",
            max_bytes=max_bytes,
            http_timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        )
    except UnsafeUrl as exc:
        raise TelegramError(f"The Bot API URL is refused: {exc.detail}", retryable=False) from exc
    except OutboundTooLarge as exc:
        raise TelegramError("the voice message is larger than allowed", retryable=False) from exc
    except OutboundFailed as exc:
        raise TelegramError(exc.detail, retryable=True) from exc
    if response.status_code != 200:
        retryable = response.status_code >= 500 or response.status_code == 429
        raise TelegramError("the file download failed", retryable=retryable)
    return response.body


async def send_voice(
    runtime: Runtime, base: str, token: str, chat_id: int, ogg: bytes, caption: str | None
) -> Any:
    """`sendVoice` with the OGG/Opus note uploaded as multipart/form-data."""
    boundary = "parley" + secrets.token_hex(12)
    parts: list[tuple[str, bytes, str | None]] = [("chat_id", str(chat_id).encode(), None)]
    if caption:
        parts.append(("caption", caption[:1024].encode(), None))
    parts.append(("voice", ogg, "reply.ogg"))
    body = b""
    for name, value, filename in parts:
        body += f"--{boundary}\r\n".encode()
        if filename is None:
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        else:
            body += (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: audio/ogg\r\n\r\n"
            ).encode()
        body += value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return await call(
        runtime,
        base,
        token,
        "sendVoice",
        None,
        raw=(body, f"multipart/form-data; boundary={boundary}"),
    )
