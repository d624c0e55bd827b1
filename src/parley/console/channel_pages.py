"""`/console/w/{tenant}/channels…`: the widget (allowed origins, theme, embed snippet), Telegram
(paste the token) and the webhook channel (its secret shown once). The channels API's service
calls, with the same validation (origins, token format, URLs)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from parley.bots import service as bots
from parley.bots.schemas import Theme
from parley.channels import service as channels
from parley.channels.schemas import (
    ChannelSecretRotate,
    ChannelUpdate,
    TelegramChannelCreate,
    WebhookChannelCreate,
    WidgetChannelCreate,
)
from parley.console import render
from parley.console.door import Viewer, member
from parley.console.endpoints import layout, snippet
from parley.console.forms import FormState, attempt, parse, read_form, submit
from parley.kit.errors import NotFound

router = APIRouter(prefix="/console/w/{tenant_id}/channels", include_in_schema=False)
Reader = Annotated[Viewer, member("viewer")]
Editor = Annotated[Viewer, member("editor")]


THEME_FIELDS = ("color", "position", "title", "greeting")


def _base(viewer: Viewer) -> str:
    return f"/console/w/{viewer.tenant_id}/channels"


def origin_of(typed: str) -> str:
    """What a person types as their site (`shop.example.com/products`) to the origin the
    allowlist holds (`https://shop.example.com`); the schema then validates it."""
    text = typed.strip()
    if text and "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
    except ValueError:
        return typed.strip()
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return typed.strip()


async def _page(viewer: Viewer, **extra: Any) -> dict[str, Any]:
    found = await channels.list_channels(viewer.session, viewer.tenant_id, None, 100)
    bot_page = await bots.list_bots(viewer.session, viewer.tenant_id, None, 100)
    extra.setdefault("form", FormState())
    extra.setdefault("created", None)
    extra.setdefault("empty_form", FormState())
    return await layout(viewer, channels=found.items, bots=bot_page.items, **extra)


@router.get("")
async def channel_list(request: Request, viewer: Reader) -> Response:
    return render.page(request, "channels/list.html", await _page(viewer))


@router.post("/new/{kind}")
async def create_channel(request: Request, viewer: Editor, kind: str) -> Response:
    data = await read_form(request)
    state = FormState(values={**data, "kind": kind})
    bot_id = data.get("bot_id", "")
    body: Any = None
    if kind == "widget":
        origins = [origin_of(o) for o in str(data.get("allowed_origins", "")).split() if o.strip()]
        body = parse(
            WidgetChannelCreate,
            {"type": "widget", "bot_id": bot_id, "allowed_origins": origins},
            state,
        )
    elif kind == "telegram":
        body = parse(
            TelegramChannelCreate,
            {
                "type": "telegram",
                "bot_id": bot_id,
                "config": {"bot_token": str(data.get("config.bot_token", "")).strip()},
            },
            state,
        )
    elif kind == "webhook":
        body = parse(
            WebhookChannelCreate,
            {
                "type": "webhook",
                "bot_id": bot_id,
                "config": {"callback_url": str(data.get("config.callback_url", "")).strip()},
            },
            state,
        )
    else:
        return render.page(
            request,
            "error.html",
            {"title": "Not found", "message": "Unknown channel type."},
            status=404,
        )
    created = None
    if body is not None:
        created = await attempt(
            viewer.session,
            state,
            lambda: channels.create_channel(
                viewer.session,
                viewer.runtime,
                viewer.tenant_id,
                body,
                actor=viewer.principal.actor,
                request_base_url=str(request.base_url),
            ),
        )
    if created is None:
        return render.page(
            request, "channels/list.html", await _page(viewer, form=state), status=422
        )
    if data.get("back") == "home":
        return render.redirect(request, f"/console/w/{viewer.tenant_id}/")
    if created.webhook_secret:  # shown once, on this response only
        return render.page(request, "channels/list.html", await _page(viewer, created=created))
    return render.redirect(request, f"{_base(viewer)}/{created.id}")


@router.get("/{channel_id}")
async def channel(request: Request, viewer: Reader, channel_id: uuid.UUID) -> Response:
    found = await channels.get_channel(viewer.session, viewer.tenant_id, channel_id)
    telegram = None
    if found.type == "telegram":
        telegram = await channels.telegram_state(
            viewer.session, viewer.runtime, viewer.tenant_id, channel_id
        )
    context = await layout(
        viewer,
        channel=found,
        form=FormState(),
        snippet=snippet(request, found.widget_key),
        telegram=telegram,
        rotated=None,
    )
    return render.page(request, "channels/channel.html", context)


def _typed_theme(data: Any) -> dict[str, str]:
    """The theme fields as typed in the form (`theme.color`, …), blanks left out."""
    return {
        k: str(data.get(f"theme.{k}", "")).strip()
        for k in THEME_FIELDS
        if str(data.get(f"theme.{k}", "")).strip()
    }


@router.get("/{channel_id}/preview")
async def preview(request: Request, viewer: Reader, channel_id: uuid.UUID) -> Response:
    """The real widget (`/widget/v1/parley.js`, preview mode: drawn open, no network) with
    the theme the form holds now, for the page's preview frame. Merged as a widget session
    merges it: the bot's theme, then the channel's, then what is being typed; a value that
    would not validate is left out, as saving would refuse it."""
    found = await channels.get_channel(viewer.session, viewer.tenant_id, channel_id)
    if found.type != "widget":
        raise NotFound("Only a widget channel has a preview.")
    bot = await bots.get_bot(viewer.session, viewer.tenant_id, found.bot_id)
    merged = {
        **bot.config.theme.model_dump(exclude_none=True),
        **found.theme.model_dump(exclude_none=True),
    }
    for key, value in _typed_theme(request.query_params).items():
        try:
            Theme.model_validate({key: value})
        except ValidationError:
            continue
        merged[key] = value
    merged["name"] = bot.name
    merged["greeting"] = merged.get("greeting") or bot.config.greeting
    base = str(request.base_url).rstrip("/")
    body = (
        render.environment()
        .get_template("channels/preview.html")
        .render({"base": base, "preview": json.dumps(merged, separators=(",", ":"))})
    )
    origin = f"{request.url.scheme}://{request.url.netloc}"
    return HTMLResponse(
        body,
        headers={
            # Its own policy: the widget draws its styles in its shadow root (as on any site
            # that embeds it); no connection at all, framed only by the console.
            "Content-Security-Policy": (
                f"default-src 'none'; script-src {origin}; style-src {origin} 'unsafe-inline'; "
                "img-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'self'"
            ),
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )


@router.post("/{channel_id}/rotate")
async def rotate_secret(request: Request, viewer: Editor, channel_id: uuid.UUID) -> Response:
    """The API's rotation; the new secret is on this answer only (no redirect to a page that
    could show it again)."""
    data = await read_form(request)
    state = FormState(values=data)
    rotated = await submit(
        viewer.session,
        state,
        ChannelSecretRotate,
        {"grace_seconds": data.get("grace_seconds") or None},
        lambda body: channels.rotate_secret(
            viewer.session,
            viewer.runtime,
            viewer.tenant_id,
            channel_id,
            body,
            actor=viewer.principal.actor,
        ),
    )
    found = await channels.get_channel(viewer.session, viewer.tenant_id, channel_id)
    context = await layout(
        viewer, channel=found, form=state, snippet=None, telegram=None, rotated=rotated
    )
    return render.page(request, "channels/channel.html", context, status=200 if rotated else 422)


@router.post("/{channel_id}")
async def update_channel(request: Request, viewer: Editor, channel_id: uuid.UUID) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    theme = {k: str(data.get(f"theme.{k}", "")).strip() or None for k in THEME_FIELDS}
    origins = [origin_of(o) for o in str(data.get("allowed_origins", "")).split() if o.strip()]
    saved = await submit(
        viewer.session,
        state,
        ChannelUpdate,
        {"allowed_origins": origins, "theme": {k: v for k, v in theme.items() if v is not None}},
        lambda body: channels.update_channel(
            viewer.session, viewer.tenant_id, channel_id, body, actor=viewer.principal.actor
        ),
    )
    if saved is None:
        found = await channels.get_channel(viewer.session, viewer.tenant_id, channel_id)
        context = await layout(
            viewer,
            channel=found,
            form=state,
            snippet=snippet(request, found.widget_key),
            telegram=None,
            rotated=None,
        )
        return render.page(request, "channels/channel.html", context, status=422)
    return render.redirect(request, f"{_base(viewer)}/{channel_id}?saved=1")
