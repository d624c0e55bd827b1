"""`/console/w/{tenant}/webhooks` (endpoints, secrets shown once and rotated, deliveries, the
dead-letter queue with re-run), `/automations` (rules: when an event matches a condition, do
an action) and `/providers` (write-only keys). The webhooks, automations and provider
credentials APIs' service calls, with their roles."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, cast

from fastapi import APIRouter, Request, Response

from parley.automations import service as automations
from parley.automations.schemas import RuleCreate
from parley.console import render
from parley.console.door import Viewer, member
from parley.console.endpoints import layout
from parley.console.forms import FormState, attempt, parse, read_form, submit
from parley.kit.event_names import EVENT_TYPES
from parley.llm import credentials
from parley.llm.credentials import CredentialIn, ProviderName
from parley.webhooks import service as webhooks
from parley.webhooks.schemas import WebhookCreate

router = APIRouter(prefix="/console/w/{tenant_id}", include_in_schema=False)
Reader = Annotated[Viewer, member("viewer")]
Editor = Annotated[Viewer, member("editor")]
Admin = Annotated[Viewer, member("admin")]
PROVIDERS = ("openai", "anthropic", "gemini")


async def _webhooks(viewer: Viewer, **extra: Any) -> dict[str, Any]:
    endpoints = await webhooks.list_webhooks(viewer.session, viewer.tenant_id, None, 100)
    dead = await webhooks.dead_letters(viewer.session, viewer.tenant_id, None, 50)
    extra.setdefault("form", FormState())
    extra.setdefault("secret", None)
    return await layout(
        viewer, endpoints=endpoints.items, dead=dead.items, event_types=EVENT_TYPES, **extra
    )


@router.get("/webhooks")
async def webhook_list(request: Request, viewer: Reader) -> Response:
    return render.page(request, "integrations/webhooks.html", await _webhooks(viewer))


@router.post("/webhooks")
async def create_webhook(request: Request, viewer: Editor) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    events = data.get("events", [])
    events = [events] if isinstance(events, str) else events
    created = await submit(
        viewer.session,
        state,
        WebhookCreate,
        {"url": str(data.get("url", "")).strip(), "events": events},
        lambda body: webhooks.create(
            viewer.session, viewer.runtime, viewer.tenant_id, body, actor=viewer.principal.actor
        ),
    )
    context = await _webhooks(
        viewer,
        form=state if created is None else FormState(),
        secret=created.secret if created else None,
    )
    return render.page(
        request, "integrations/webhooks.html", context, status=200 if created else 422
    )


@router.post("/webhooks/{webhook_id}/rotate")
async def rotate(request: Request, viewer: Editor, webhook_id: uuid.UUID) -> Response:
    rotated = await webhooks.rotate_secret(
        viewer.session, viewer.runtime, viewer.tenant_id, webhook_id, actor=viewer.principal.actor
    )
    context = await _webhooks(viewer, secret=rotated.secret)
    return render.page(request, "integrations/webhooks.html", context)


@router.get("/webhooks/{webhook_id}")
async def deliveries(request: Request, viewer: Reader, webhook_id: uuid.UUID) -> Response:
    endpoint = await webhooks.get(viewer.session, viewer.tenant_id, webhook_id)
    page = await webhooks.list_deliveries(
        viewer.session, viewer.tenant_id, webhook_id, None, request.query_params.get("cursor"), 50
    )
    context = await layout(viewer, endpoint=endpoint, deliveries=page)
    return render.page(request, "integrations/deliveries.html", context)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
async def retry(
    request: Request, viewer: Editor, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> Response:
    await webhooks.retry(
        viewer.session, viewer.tenant_id, webhook_id, delivery_id, actor=viewer.principal.actor
    )
    return render.redirect(request, f"/console/w/{viewer.tenant_id}/webhooks/{webhook_id}")


@router.get("/providers")
async def providers(request: Request, viewer: Admin) -> Response:
    stored = await credentials.list_all(viewer.session, viewer.tenant_id)
    context = await layout(
        viewer,
        stored={c.provider: c for c in stored},
        providers=PROVIDERS,
        form=FormState(),
        empty=FormState(),
    )
    return render.page(request, "integrations/providers.html", context)


@router.post("/providers/{provider}/forget")
async def forget_provider(request: Request, viewer: Admin, provider: str) -> Response:
    """The API's delete: the workspace's bots go back to the server's default key, if any."""
    if provider in PROVIDERS:
        state = FormState()

        async def forget() -> bool:
            await credentials.delete(
                viewer.session,
                viewer.tenant_id,
                cast(ProviderName, provider),  # checked against PROVIDERS above
                actor=viewer.principal.actor,
            )
            return True

        if await attempt(viewer.session, state, forget) is not None:
            return render.redirect(request, f"/console/w/{viewer.tenant_id}/providers")
    return render.page(
        request, "error.html", {"title": "Not found", "message": "No key to forget."}, status=404
    )


@router.post("/providers/{provider}")
async def put_provider(request: Request, viewer: Admin, provider: str) -> Response:
    if provider not in PROVIDERS:
        return render.page(
            request,
            "error.html",
            {"title": "Not found", "message": "No such provider."},
            status=404,
        )
    data = await read_form(request)
    state = FormState(values={"provider": provider, "base_url": data.get("base_url", "")})
    saved = await submit(
        viewer.session,
        state,
        CredentialIn,
        {"api_key": data.get("api_key", ""), "base_url": str(data.get("base_url", "")) or None},
        lambda body: credentials.put(
            viewer.session,
            viewer.runtime,
            viewer.tenant_id,
            cast(ProviderName, provider),  # checked against PROVIDERS above
            body,
            actor=viewer.principal.actor,
        ),
    )
    if saved is None:
        stored = await credentials.list_all(viewer.session, viewer.tenant_id)
        context = await layout(
            viewer,
            stored={c.provider: c for c in stored},
            providers=PROVIDERS,
            form=state,
            empty=FormState(),
        )
        return render.page(request, "integrations/providers.html", context, status=422)
    return render.redirect(request, f"/console/w/{viewer.tenant_id}/providers")


CONDITIONS = {
    "always": "Always",
    "message_contains": "The visitor's message contains…",
    "bot_could_not_answer": "The bot could not answer",
    "visitor_left_email": "The visitor left an email address",
}
ACTIONS = {
    "tag_conversation": "Tag the conversation",
    "request_handoff": "Hand the conversation to a person",
    "call_webhook": "Call a webhook",
}


async def _automations(viewer: Viewer, **extra: Any) -> dict[str, Any]:
    rules = await automations.list_rules(viewer.session, viewer.tenant_id, None, 100)
    hooks = await webhooks.list_webhooks(viewer.session, viewer.tenant_id, None, 100)
    extra.setdefault("form", FormState())
    return await layout(
        viewer,
        rules=rules.items,
        hooks=hooks.items,
        event_types=EVENT_TYPES,
        conditions=CONDITIONS,
        actions=ACTIONS,
        **extra,
    )


@router.get("/automations")
async def automation_list(request: Request, viewer: Reader) -> Response:
    return render.page(request, "integrations/automations.html", await _automations(viewer))


def rule_from_form(data: dict[str, Any]) -> dict[str, Any]:
    """The form's flat fields as a `RuleCreate` body (validated by the model, as the API's)."""
    condition: dict[str, Any] = {"type": data.get("condition.type", "")}
    if condition["type"] == "message_contains":
        condition["value"] = str(data.get("condition.value", "")).strip()
    action: dict[str, Any] = {"type": data.get("action.type", "")}
    if action["type"] == "tag_conversation":
        action["tag"] = str(data.get("action.tag", "")).strip()
    elif action["type"] == "call_webhook":
        action["webhook_id"] = data.get("action.webhook_id", "")
    return {
        "name": str(data.get("name", "")).strip(),
        "event": data.get("event", ""),
        "condition": condition,
        "action": action,
    }


@router.post("/automations")
async def create_automation(request: Request, viewer: Editor) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    body = parse(RuleCreate, rule_from_form(data), state)
    # A tagged union's errors name the tag (`condition.message_contains.value`): the form's
    # field is `condition.value`.
    state.errors = {
        (f"{k.split('.')[0]}.{k.split('.')[-1]}" if k.count(".") == 2 else k): v
        for k, v in state.errors.items()
    }
    created = None
    if body is not None:
        created = await attempt(
            viewer.session,
            state,
            lambda: automations.create(
                viewer.session, viewer.tenant_id, body, actor=viewer.principal.actor
            ),
        )
    if created is None:
        context = await _automations(viewer, form=state)
        return render.page(request, "integrations/automations.html", context, status=422)
    return render.redirect(request, f"/console/w/{viewer.tenant_id}/automations")


@router.post("/automations/{rule_id}/delete")
async def delete_automation(request: Request, viewer: Editor, rule_id: uuid.UUID) -> Response:
    await automations.delete(
        viewer.session, viewer.tenant_id, rule_id, actor=viewer.principal.actor
    )
    return render.redirect(request, f"/console/w/{viewer.tenant_id}/automations")
