"""Every tenant route × every kind of caller, generated from the route table.

ARCHITECTURE: anonymous → 401, wrong role/scope → 403, another tenant's credentials or ids →
404, valid → 2xx. A tenant route without a case below fails the test, so none is forgotten.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from parley.auth.access import ROLE_RANK
from tests.analytics.factories import failed_question
from tests.conftest import (
    ALLOWED_ORIGIN,
    Account,
    add_member,
    assert_problem,
    create_api_key,
    create_widget,
    register,
    widget_session,
)
from tests.conversations.factories import create_conversation
from tests.routes import access_of, api_routes

TENANT_PREFIX = "/v1/tenants/{tenant_id}"


@dataclass
class World:
    client: httpx.AsyncClient
    a: dict[str, Account]  # role -> account in tenant A
    b_owner: Account
    b_key: str
    a_keys: dict[str, str] = field(default_factory=dict)  # scope -> key of tenant A
    b_ids: dict[str, str] = field(default_factory=dict)  # resource ids in tenant B
    cache: dict[str, str] = field(default_factory=dict)  # reusable fixtures of tenant A

    def tenant_a(self) -> str:
        return self.a["owner"].tenant_id


@dataclass
class Call:
    path_params: dict[str, str]
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None


CaseFn = Callable[[World], Awaitable[Call]]


async def _fresh_member(w: World, role: str = "editor") -> Account:
    return await add_member(w.client, w.a["owner"], role)


async def _fresh_invitation(w: World) -> str:
    resp = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/invitations",
        json={"email": f"x-{uuid.uuid4().hex[:8]}@example.com", "role": "viewer"},
        headers=w.a["owner"].headers,
    )
    return str(resp.json()["id"])


async def _fresh_key(w: World) -> str:
    return str((await create_api_key(w.client, w.a["owner"], ["chat"]))["id"])


async def _none(w: World) -> Call:
    return Call({})


async def _patch_tenant(w: World) -> Call:
    return Call({}, {"name": "Renamed"})


async def _patch_member(w: World) -> Call:
    m = await _fresh_member(w, "editor")
    return Call({"user_id": m.user_id}, {"role": "viewer"})


async def _delete_member(w: World) -> Call:
    m = await _fresh_member(w, "viewer")
    return Call({"user_id": m.user_id})


async def _create_invitation(w: World) -> Call:
    return Call({}, {"email": f"i-{uuid.uuid4().hex[:8]}@example.com", "role": "editor"})


async def _delete_invitation(w: World) -> Call:
    return Call({"invitation_id": await _fresh_invitation(w)})


async def _create_key(w: World) -> Call:
    return Call({}, {"name": "ci", "scopes": ["chat"]})


async def _delete_key(w: World) -> Call:
    return Call({"key_id": await _fresh_key(w)})


async def _fresh_bot(w: World) -> str:
    resp = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/bots", json={"name": "m"}, headers=w.a["owner"].headers
    )
    return str(resp.json()["id"])


async def _fresh_channel(w: World) -> str:
    resp = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/channels",
        json={
            "type": "widget",
            "bot_id": await _fresh_bot(w),
            "allowed_origins": ["https://a.example"],
        },
        headers=w.a["owner"].headers,
    )
    return str(resp.json()["id"])


async def _create_bot(w: World) -> Call:
    return Call({}, {"name": "Matrix bot"})


async def _bot(w: World) -> Call:
    return Call({"bot_id": await _fresh_bot(w)})


async def _patch_bot(w: World) -> Call:
    return Call({"bot_id": await _fresh_bot(w)}, {"greeting": "Hey"})


async def _create_channel(w: World) -> Call:
    return Call(
        {},
        {"type": "widget", "bot_id": await _fresh_bot(w), "allowed_origins": ["https://a.example"]},
    )


async def _channel(w: World) -> Call:
    return Call({"channel_id": await _fresh_channel(w)})


async def _webhook_channel(w: World) -> Call:
    """A webhook channel: the kind whose inbound secret rotates."""
    resp = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/channels",
        json={
            "type": "webhook",
            "bot_id": await _fresh_bot(w),
            "config": {"callback_url": "https://hooks.example.com/in"},
        },
        headers=w.a["owner"].headers,
    )
    return Call({"channel_id": str(resp.json()["id"])})


async def _patch_channel(w: World) -> Call:
    return Call({"channel_id": await _fresh_channel(w)}, {"name": "Renamed"})


async def _fresh_versions(w: World) -> tuple[str, str, str]:
    """A fresh bot, its published version, and a draft."""
    owner = w.a["owner"]
    bot = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/bots", json={"name": "v"}, headers=owner.headers
    )
    draft = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/bots/{bot.json()['id']}/versions",
        json={"greeting": "draft"},
        headers=owner.headers,
    )
    return str(bot.json()["id"]), str(bot.json()["version_id"]), str(draft.json()["id"])


async def _create_version(w: World) -> Call:
    return Call({"bot_id": await _fresh_bot(w)}, {"instructions": "Be brief."})


async def _published_version(w: World) -> Call:
    bot, published, _ = await _fresh_versions(w)
    return Call({"bot_id": bot, "version_id": published})


async def _draft(w: World) -> Call:
    bot, _, draft = await _fresh_versions(w)
    return Call({"bot_id": bot, "version_id": draft})


async def _edit_draft(w: World) -> Call:
    bot, _, draft = await _fresh_versions(w)
    return Call({"bot_id": bot, "version_id": draft}, {"temperature": 0.5})


async def _preview(w: World) -> Call:
    bot, _, draft = await _fresh_versions(w)
    return Call({"bot_id": bot, "version_id": draft}, {"content": "hello"})


async def _diff(w: World) -> Call:
    bot, published, draft = await _fresh_versions(w)
    return Call({"bot_id": bot, "version_id": draft}, params={"against": published})


async def _put_credential(w: World) -> Call:
    return Call({"provider": "openai"}, {"api_key": "sk-matrix-key-0001"})


async def _voice_settings(w: World) -> Call:
    return Call({}, {"retain_audio": True})


async def _stored_credential(w: World) -> Call:
    await w.client.put(
        f"/v1/tenants/{w.tenant_a()}/providers/anthropic",
        json={"api_key": "sk-matrix-key-0002"},
        headers=w.a["owner"].headers,
    )
    return Call({"provider": "anthropic"})


async def _fresh_source(w: World) -> tuple[str, str]:
    resp = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/knowledge/sources",
        json={"type": "text", "title": "Matrix", "text": "Opening hours are nine to five."},
        headers=w.a["owner"].headers,
    )
    return str(resp.json()["id"]), str(resp.json()["job"]["id"])


async def _create_source(w: World) -> Call:
    return Call({}, {"type": "text", "title": "Matrix", "text": "Closed on Sundays."})


async def _source(w: World) -> Call:
    return Call({"source_id": (await _fresh_source(w))[0]})


async def _job(w: World) -> Call:
    return Call({"job_id": (await _fresh_source(w))[1]})


async def _search(w: World) -> Call:
    return Call({}, {"query": "opening hours"})


async def _quality(w: World) -> Call:
    return Call({}, {"questions": ["opening hours?"]})


# A public literal address: passes the SSRF check without DNS. Matrix webhooks subscribe only to
# events the matrix never causes, or are disabled before a worker could send anything.
HOOK_URL = "https://93.184.215.14/matrix-hook"


async def _fresh_hook(w: World) -> str:
    resp = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/webhooks",
        json={"url": HOOK_URL, "events": ["knowledge.job.completed"]},
        headers=w.a["owner"].headers,
    )
    return str(resp.json()["id"])


async def disabled_hook_with_delivery(client: httpx.AsyncClient, owner: Account) -> tuple[str, str]:
    """A webhook with one delivery (a conversation started), disabled so it is never sent."""
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/webhooks",
        json={"url": HOOK_URL, "events": ["conversation.started"]},
        headers=owner.headers,
    )
    hook = str(resp.json()["id"])
    widget = await create_widget(client, owner)
    await client.post(
        "/v1/widget/session",
        json={"widget_key": widget.widget_key},
        headers={"Origin": "https://shop.example.com"},
    )
    base = f"/v1/tenants/{owner.tenant_id}/webhooks/{hook}"
    await client.patch(base, json={"enabled": False}, headers=owner.headers)
    (delivery,) = (await client.get(f"{base}/deliveries", headers=owner.headers)).json()["items"]
    return hook, str(delivery["id"])


async def _create_hook(w: World) -> Call:
    return Call({}, {"url": HOOK_URL, "events": ["usage.threshold"]})


async def _hook(w: World) -> Call:
    return Call({"webhook_id": await _fresh_hook(w)})


async def _patch_hook(w: World) -> Call:
    return Call({"webhook_id": await _fresh_hook(w)}, {"description": "renamed"})


async def _delivery(w: World) -> Call:
    if "delivery_id" not in w.cache:
        hook, delivery = await disabled_hook_with_delivery(w.client, w.a["owner"])
        w.cache.update(webhook_id=hook, delivery_id=delivery)
    return Call({"webhook_id": w.cache["webhook_id"], "delivery_id": w.cache["delivery_id"]})


def _rule_body() -> dict[str, Any]:
    return {
        "name": "matrix",
        "event": "message.created",
        "condition": {"type": "message_contains", "value": "matrix"},
        "action": {"type": "tag_conversation", "tag": "matrix"},
    }


async def _fresh_rule(w: World) -> str:
    resp = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/automations", json=_rule_body(), headers=w.a["owner"].headers
    )
    return str(resp.json()["id"])


async def _create_rule(w: World) -> Call:
    return Call({}, _rule_body())


async def _rule(w: World) -> Call:
    return Call({"rule_id": await _fresh_rule(w)})


async def _patch_rule(w: World) -> Call:
    return Call({"rule_id": await _fresh_rule(w)}, {"enabled": False})


# --- the inbox (conversations for staff) ---------------------------------------------------


async def _fresh_conversation(w: World, status: str = "bot") -> str:
    """A new widget conversation of tenant A, moved to `status` by A's owner."""
    if "channel_id" not in w.cache:
        widget = await create_widget(w.client, w.a["owner"])
        w.cache["channel_id"], w.cache["bot_id"] = widget.channel_id, widget.bot_id
    app = w.client._transport.app  # type: ignore[attr-defined]
    conv = await create_conversation(
        app.state.runtime.db, w.tenant_a(), w.cache["channel_id"], w.cache["bot_id"]
    )
    base = f"/v1/tenants/{w.tenant_a()}/conversations/{conv}"
    h = w.a["owner"].headers
    if status in ("assigned", "resolved"):
        assert (await w.client.post(f"{base}/assign", headers=h)).status_code == 200
    if status == "resolved":
        assert (await w.client.post(f"{base}/resolve", headers=h)).status_code == 200
    return conv


async def _conv(w: World) -> Call:
    return Call({"conversation_id": await _fresh_conversation(w)})


async def _conv_assigned(w: World) -> Call:
    return Call({"conversation_id": await _fresh_conversation(w, "assigned")})


async def _conv_resolved(w: World) -> Call:
    return Call({"conversation_id": await _fresh_conversation(w, "resolved")})


async def _reply(w: World) -> Call:
    return Call({"conversation_id": await _fresh_conversation(w)}, {"content": "Hello"})


async def _assign(w: World) -> Call:
    return Call(
        {"conversation_id": await _fresh_conversation(w)}, {"user_id": w.a["owner"].user_id}
    )


async def _create_note(w: World) -> Call:
    return Call({"conversation_id": await _fresh_conversation(w)}, {"body": "A note"})


async def _note(w: World) -> Call:
    conv = await _fresh_conversation(w)
    note = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/conversations/{conv}/notes",
        json={"body": "n"},
        headers=w.a["owner"].headers,
    )
    return Call({"conversation_id": conv, "note_id": note.json()["id"]})


async def _tag(w: World) -> Call:
    return Call({"conversation_id": await _fresh_conversation(w), "tag": "vip"})


async def _tagged(w: World) -> Call:
    conv = await _fresh_conversation(w)
    await w.client.put(
        f"/v1/tenants/{w.tenant_a()}/conversations/{conv}/tags/vip", headers=w.a["owner"].headers
    )
    return Call({"conversation_id": conv, "tag": "vip"})


async def _replay_events(w: World) -> Call:
    return Call({}, params={"follow": "false"})


async def _put_inbox_settings(w: World) -> Call:
    return Call({}, {"offline_message": "Back soon."})


async def _put_quota_settings(w: World) -> Call:
    return Call({}, {"quota_message": "We're at capacity; back soon."})


async def _put_budget(w: World) -> Call:
    return Call({"channel_id": await _fresh_channel(w)}, {"messages_per_day": 20})


async def _fresh_visitor(w: World) -> Call:
    """A visitor of tenant A with a conversation: export and erasure select it by id."""
    if "widget_key" not in w.cache:
        w.cache["widget_key"] = (await create_widget(w.client, w.a["owner"])).widget_key
    session = await w.client.post(
        "/v1/widget/session",
        json={"widget_key": w.cache["widget_key"]},
        headers={"Origin": ALLOWED_ORIGIN},
    )
    me = await w.client.get(
        "/v1/widget/whoami",
        headers={"Authorization": f"Bearer {session.json()['token']}", "Origin": ALLOWED_ORIGIN},
    )
    return Call({}, {"visitor_id": me.json()["visitor_id"]})


async def _no_exports(w: World) -> Call:
    """Tenant A with no export this hour (one at a time, three an hour: the matrix asks more)."""
    from parley.kit.db import TenantId, tenant_session

    app = w.client._transport.app  # type: ignore[attr-defined]
    tid = TenantId(uuid.UUID(w.tenant_a()))
    async with tenant_session(app.state.runtime.db, tid) as session:
        await session.execute(
            text("DELETE FROM workspace_exports WHERE tenant_id = :t"), {"t": tid}
        )
    return Call({})


async def _ready_export(w: World) -> Call:
    """A built export of tenant A (requested by its owner, its job run here)."""
    from parley.kit.jobs import JobContext
    from parley.lifecycle import exports

    known = w.cache.get("export_id")
    if known is not None:
        seen = await w.client.get(
            f"/v1/tenants/{w.tenant_a()}/exports/{known}", headers=w.a["owner"].headers
        )
        if seen.status_code != 200:  # the POST case cleared it
            del w.cache["export_id"]
    if "export_id" not in w.cache:
        await _no_exports(w)
        asked = await w.client.post(
            f"/v1/tenants/{w.tenant_a()}/exports", headers=w.a["owner"].headers
        )
        assert asked.status_code == 202, asked.text
        runtime = w.client._transport.app.state.runtime  # type: ignore[attr-defined]
        ctx = JobContext(
            db=runtime.db,
            job_id=0,
            entrypoint=exports.EXPORT_JOB,
            attempt=0,
            payload={"tenant_id": w.tenant_a(), "export_id": asked.json()["id"]},
            runtime_=runtime,
            max_attempts=3,
        )
        await exports.build_export(ctx)
        w.cache["export_id"] = asked.json()["id"]
    return Call({"export_id": w.cache["export_id"]})


async def _pending_deletion(w: World) -> Call:
    await w.client.post(f"/v1/tenants/{w.tenant_a()}/deletion", headers=w.a["owner"].headers)
    return Call({})


async def _no_deletion(w: World) -> Call:
    await w.client.delete(f"/v1/tenants/{w.tenant_a()}/deletion", headers=w.a["owner"].headers)
    return Call({})


async def _retention(w: World) -> Call:
    return Call({}, {"conversations_days": 400, "files_days": None, "logs_days": 30})


async def _fresh_golden(w: World) -> tuple[str, str]:
    bot = await _fresh_bot(w)
    q = await w.client.post(
        f"/v1/tenants/{w.tenant_a()}/bots/{bot}/golden-questions",
        json={"question": "Hours?", "expected_answer": "9"},
        headers=w.a["owner"].headers,
    )
    return bot, str(q.json()["id"])


async def _create_golden(w: World) -> Call:
    return Call({"bot_id": await _fresh_bot(w)}, {"question": "Hours?", "expected_answer": "9"})


async def _golden(w: World) -> Call:
    bot, question = await _fresh_golden(w)
    return Call({"bot_id": bot, "question_id": question})


async def _patch_golden(w: World) -> Call:
    bot, question = await _fresh_golden(w)
    return Call({"bot_id": bot, "question_id": question}, {"expected_answer": "10"})


async def _put_gate(w: World) -> Call:
    return Call({"bot_id": await _fresh_bot(w)}, {"mode": "block"})


async def _gaps(w: World) -> Call:
    return Call({}, params={"bot_id": await _fresh_bot(w)})


async def _answer_gap(w: World) -> Call:
    """A fresh bot with one unanswered question (its own gap), and an FAQ source."""
    widget = await create_widget(w.client, w.a["owner"])
    app = w.client._transport.app  # type: ignore[attr-defined]
    gap = await failed_question(
        app.state.runtime.db, w.tenant_a(), widget.bot_id, widget.channel_id, "Gift cards?"
    )
    if "faq_id" not in w.cache:
        faq = await w.client.post(
            f"/v1/tenants/{w.tenant_a()}/knowledge/sources",
            json={"type": "faq", "title": "FAQ", "pairs": [{"question": "q", "answer": "a"}]},
            headers=w.a["owner"].headers,
        )
        w.cache["faq_id"] = faq.json()["id"]
    return Call(
        {"gap_id": str(gap)},
        {"bot_id": widget.bot_id, "source_id": w.cache["faq_id"], "answer": "Yes, online."},
    )


@dataclass(frozen=True)
class Case:
    make: CaseFn
    ok: int
    # The role the *operation* needs when the route admits lower roles for special cases
    # (a viewer may DELETE their own membership, not someone else's).
    effective_role: str | None = None
    foreign_param: str | None = None  # path param that may carry another tenant's id


CASES: dict[tuple[str, str], Case] = {
    ("GET", ""): Case(_none, 200),
    ("PATCH", ""): Case(_patch_tenant, 200),
    ("GET", "/members"): Case(_none, 200),
    ("PATCH", "/members/{user_id}"): Case(_patch_member, 200, foreign_param="user_id"),
    ("DELETE", "/members/{user_id}"): Case(
        _delete_member, 204, effective_role="admin", foreign_param="user_id"
    ),
    ("POST", "/invitations"): Case(_create_invitation, 201),
    ("GET", "/invitations"): Case(_none, 200),
    ("DELETE", "/invitations/{invitation_id}"): Case(
        _delete_invitation, 204, foreign_param="invitation_id"
    ),
    ("POST", "/api-keys"): Case(_create_key, 201),
    ("GET", "/api-keys"): Case(_none, 200),
    ("DELETE", "/api-keys/{key_id}"): Case(_delete_key, 204, foreign_param="key_id"),
    ("POST", "/bots"): Case(_create_bot, 201),
    ("GET", "/bots"): Case(_none, 200),
    ("GET", "/bots/{bot_id}"): Case(_bot, 200, foreign_param="bot_id"),
    ("PATCH", "/bots/{bot_id}"): Case(_patch_bot, 200, foreign_param="bot_id"),
    ("DELETE", "/bots/{bot_id}"): Case(_bot, 204, foreign_param="bot_id"),
    ("POST", "/channels"): Case(_create_channel, 201),
    ("GET", "/channels"): Case(_none, 200),
    ("GET", "/channels/{channel_id}"): Case(_channel, 200, foreign_param="channel_id"),
    ("GET", "/channels/{channel_id}/events"): Case(_channel, 200, foreign_param="channel_id"),
    ("PATCH", "/channels/{channel_id}"): Case(_patch_channel, 200, foreign_param="channel_id"),
    ("DELETE", "/channels/{channel_id}"): Case(_channel, 204, foreign_param="channel_id"),
    ("POST", "/channels/{channel_id}/rotate-secret"): Case(
        _webhook_channel, 200, foreign_param="channel_id"
    ),
    ("GET", "/channels/{channel_id}/visitor-budget"): Case(
        _channel, 200, foreign_param="channel_id"
    ),
    ("PUT", "/channels/{channel_id}/visitor-budget"): Case(
        _put_budget, 200, foreign_param="channel_id"
    ),
    ("GET", "/usage"): Case(_none, 200),
    ("GET", "/usage.csv"): Case(_none, 200),
    ("GET", "/usage/settings"): Case(_none, 200),
    ("PUT", "/usage/settings"): Case(_put_quota_settings, 200),
    ("POST", "/bots/{bot_id}/versions"): Case(_create_version, 201, foreign_param="bot_id"),
    ("GET", "/bots/{bot_id}/versions"): Case(_bot, 200, foreign_param="bot_id"),
    ("GET", "/bots/{bot_id}/versions/{version_id}"): Case(
        _published_version, 200, foreign_param="version_id"
    ),
    ("PATCH", "/bots/{bot_id}/versions/{version_id}"): Case(
        _edit_draft, 200, foreign_param="version_id"
    ),
    ("POST", "/bots/{bot_id}/versions/{version_id}/publish"): Case(
        _draft, 200, foreign_param="version_id"
    ),
    ("GET", "/bots/{bot_id}/versions/{version_id}/diff"): Case(
        _diff, 200, foreign_param="version_id"
    ),
    ("POST", "/bots/{bot_id}/versions/{version_id}/chat"): Case(
        _preview, 200, foreign_param="version_id"
    ),
    ("GET", "/audit-log"): Case(_none, 200),
    ("GET", "/llm-usage"): Case(_none, 200),
    ("PUT", "/providers/{provider}"): Case(_put_credential, 200),
    ("GET", "/providers"): Case(_none, 200),
    ("DELETE", "/providers/{provider}"): Case(_stored_credential, 204),
    ("GET", "/audit-log/verify"): Case(_none, 200),
    ("POST", "/knowledge/sources"): Case(_create_source, 202),
    ("GET", "/knowledge/sources"): Case(_none, 200),
    ("GET", "/knowledge/sources/{source_id}"): Case(_source, 200, foreign_param="source_id"),
    ("GET", "/knowledge/sources/{source_id}/chunks"): Case(_source, 200, foreign_param="source_id"),
    ("POST", "/knowledge/sources/{source_id}/reindex"): Case(
        _source, 202, foreign_param="source_id"
    ),
    # A fresh source has no previous index version: 409 proves the caller got through;
    # tests/knowledge covers the 200.
    ("POST", "/knowledge/sources/{source_id}/restore"): Case(
        _source, 409, foreign_param="source_id"
    ),
    ("DELETE", "/knowledge/sources/{source_id}"): Case(_source, 204, foreign_param="source_id"),
    ("GET", "/knowledge/jobs/{job_id}"): Case(_job, 200, foreign_param="job_id"),
    ("POST", "/knowledge/search"): Case(_search, 200),
    ("POST", "/knowledge/quality-check"): Case(_quality, 200),
    ("POST", "/webhooks"): Case(_create_hook, 201),
    ("GET", "/webhooks"): Case(_none, 200),
    ("GET", "/webhooks/dead-letters"): Case(_none, 200),
    ("GET", "/webhooks/{webhook_id}"): Case(_hook, 200, foreign_param="webhook_id"),
    ("PATCH", "/webhooks/{webhook_id}"): Case(_patch_hook, 200, foreign_param="webhook_id"),
    ("DELETE", "/webhooks/{webhook_id}"): Case(_hook, 204, foreign_param="webhook_id"),
    ("POST", "/webhooks/{webhook_id}/rotate-secret"): Case(_hook, 200, foreign_param="webhook_id"),
    ("GET", "/webhooks/{webhook_id}/deliveries"): Case(_hook, 200, foreign_param="webhook_id"),
    ("GET", "/webhooks/{webhook_id}/deliveries/{delivery_id}"): Case(
        _delivery, 200, foreign_param="delivery_id"
    ),
    ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): Case(
        _delivery, 202, foreign_param="delivery_id"
    ),
    ("POST", "/automations"): Case(_create_rule, 201),
    ("GET", "/automations"): Case(_none, 200),
    ("GET", "/automations/{rule_id}"): Case(_rule, 200, foreign_param="rule_id"),
    ("PATCH", "/automations/{rule_id}"): Case(_patch_rule, 200, foreign_param="rule_id"),
    ("DELETE", "/automations/{rule_id}"): Case(_rule, 204, foreign_param="rule_id"),
    ("GET", "/voice"): Case(_none, 200),
    ("PUT", "/voice"): Case(_voice_settings, 200),
    ("GET", "/conversations"): Case(_none, 200),
    ("GET", "/conversations/{conversation_id}"): Case(_conv, 200, foreign_param="conversation_id"),
    ("GET", "/conversations/{conversation_id}/messages"): Case(
        _conv, 200, foreign_param="conversation_id"
    ),
    ("POST", "/conversations/{conversation_id}/messages"): Case(
        _reply, 201, foreign_param="conversation_id"
    ),
    ("POST", "/conversations/{conversation_id}/typing"): Case(
        _conv, 204, foreign_param="conversation_id"
    ),
    ("POST", "/conversations/{conversation_id}/assign"): Case(
        _assign, 200, foreign_param="conversation_id"
    ),
    ("POST", "/conversations/{conversation_id}/unassign"): Case(
        _conv_assigned, 200, foreign_param="conversation_id"
    ),
    ("POST", "/conversations/{conversation_id}/handback"): Case(
        _conv_assigned, 200, foreign_param="conversation_id"
    ),
    ("POST", "/conversations/{conversation_id}/resolve"): Case(
        _conv, 200, foreign_param="conversation_id"
    ),
    ("POST", "/conversations/{conversation_id}/reopen"): Case(
        _conv_resolved, 200, foreign_param="conversation_id"
    ),
    ("POST", "/conversations/{conversation_id}/notes"): Case(
        _create_note, 201, foreign_param="conversation_id"
    ),
    ("DELETE", "/conversations/{conversation_id}/notes/{note_id}"): Case(
        _note, 204, foreign_param="note_id"
    ),
    ("PUT", "/conversations/{conversation_id}/tags/{tag}"): Case(
        _tag, 200, foreign_param="conversation_id"
    ),
    ("DELETE", "/conversations/{conversation_id}/tags/{tag}"): Case(
        _tagged, 200, foreign_param="conversation_id"
    ),
    ("GET", "/inbox/events"): Case(_replay_events, 200),
    ("GET", "/inbox/settings"): Case(_none, 200),
    ("PUT", "/inbox/settings"): Case(_put_inbox_settings, 200),
    ("POST", "/privacy/visitor-export"): Case(_fresh_visitor, 200),
    ("POST", "/privacy/visitor-erasure"): Case(_fresh_visitor, 200),
    ("GET", "/deletion"): Case(_none, 200),
    ("POST", "/deletion"): Case(_no_deletion, 202),
    ("DELETE", "/deletion"): Case(_pending_deletion, 200),
    ("POST", "/exports"): Case(_no_exports, 202),
    ("GET", "/exports"): Case(_none, 200),
    ("GET", "/exports/{export_id}"): Case(_ready_export, 200),
    ("GET", "/exports/{export_id}/download"): Case(_ready_export, 200),
    ("GET", "/retention"): Case(_none, 200),
    ("GET", "/analytics/metrics"): Case(_none, 200),
    ("GET", "/analytics/models"): Case(_none, 200),
    ("GET", "/analytics/gaps"): Case(_gaps, 200),
    ("POST", "/analytics/gaps/{gap_id}/answer"): Case(_answer_gap, 201),
    ("PUT", "/retention"): Case(_retention, 200),
    ("POST", "/bots/{bot_id}/golden-questions"): Case(_create_golden, 201, foreign_param="bot_id"),
    ("GET", "/bots/{bot_id}/golden-questions"): Case(_bot, 200, foreign_param="bot_id"),
    ("GET", "/bots/{bot_id}/golden-questions/{question_id}"): Case(
        _golden, 200, foreign_param="question_id"
    ),
    ("PATCH", "/bots/{bot_id}/golden-questions/{question_id}"): Case(
        _patch_golden, 200, foreign_param="question_id"
    ),
    ("DELETE", "/bots/{bot_id}/golden-questions/{question_id}"): Case(
        _golden, 204, foreign_param="question_id"
    ),
    ("GET", "/bots/{bot_id}/quality-gate"): Case(_bot, 200, foreign_param="bot_id"),
    ("PUT", "/bots/{bot_id}/quality-gate"): Case(_put_gate, 200, foreign_param="bot_id"),
}


@pytest.fixture
async def world(client: httpx.AsyncClient) -> World:
    owner = await register(client, "owner")
    accounts = {"owner": owner}
    for role in ("admin", "editor", "agent", "viewer"):
        accounts[role] = await add_member(client, owner, role)
    b_owner = await register(client, "b-owner")
    b_key = (await create_api_key(client, b_owner, ["admin"]))["key"]
    w = World(client=client, a=accounts, b_owner=b_owner, b_key=b_key)
    b_conv = await widget_session(client, (await create_widget(client, b_owner)).widget_key)
    b_note = await client.post(
        f"/v1/tenants/{b_owner.tenant_id}/conversations/{b_conv.conversation_id}/notes",
        json={"body": "B's note"},
        headers=b_owner.headers,
    )
    # Resources in B whose ids we try through A's paths.
    b_member = await add_member(client, b_owner, "viewer")
    inv = await client.post(
        f"/v1/tenants/{b_owner.tenant_id}/invitations",
        json={"email": "b-invitee@example.com", "role": "viewer"},
        headers=b_owner.headers,
    )
    b_api = await create_api_key(client, b_owner, ["chat"])
    b_widget = await create_widget(client, b_owner)
    b_source = await client.post(
        f"/v1/tenants/{b_owner.tenant_id}/knowledge/sources",
        json={"type": "text", "title": "B", "text": "B's own knowledge."},
        headers=b_owner.headers,
    )
    b_hook, b_delivery = await disabled_hook_with_delivery(client, b_owner)
    b_rule = await client.post(
        f"/v1/tenants/{b_owner.tenant_id}/automations", json=_rule_body(), headers=b_owner.headers
    )
    b_golden = await client.post(
        f"/v1/tenants/{b_owner.tenant_id}/bots/{b_widget.bot_id}/golden-questions",
        json={"question": "B's?", "expected_answer": "b"},
        headers=b_owner.headers,
    )
    w.b_ids = {
        "question_id": b_golden.json()["id"],
        "conversation_id": b_conv.conversation_id,
        "note_id": b_note.json()["id"],
        "source_id": b_source.json()["id"],
        "job_id": b_source.json()["job"]["id"],
        "webhook_id": b_hook,
        "delivery_id": b_delivery,
        "rule_id": b_rule.json()["id"],
        "user_id": b_member.user_id,
        "invitation_id": inv.json()["id"],
        "key_id": b_api["id"],
        "bot_id": b_widget.bot_id,
        "channel_id": b_widget.channel_id,
        "version_id": (
            await client.get(
                f"/v1/tenants/{b_owner.tenant_id}/bots/{b_widget.bot_id}", headers=b_owner.headers
            )
        ).json()["version_id"],
    }
    return w


def tenant_routes(app: Any) -> list[tuple[str, str, Any]]:
    out = []
    for r in api_routes(app):
        if r.path == TENANT_PREFIX or r.path.startswith(TENANT_PREFIX + "/"):
            out.append((r.method, r.path[len(TENANT_PREFIX) :], access_of(r.dependant)))
    return out


def test_every_tenant_route_declares_access_and_has_a_case(app: Any) -> None:
    routes = tenant_routes(app)
    assert len(routes) >= len(CASES)
    for method, suffix, access in routes:
        assert access is not None, f"{method} {suffix} has no tenant_access dependency"
        assert (method, suffix) in CASES, f"add a matrix case for {method} {TENANT_PREFIX}{suffix}"


async def _send(
    w: World, method: str, suffix: str, tenant: str, call: Call, token: str | None
) -> httpx.Response:
    path = TENANT_PREFIX.format(tenant_id=tenant) + suffix.format(**call.path_params)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await w.client.request(method, path, json=call.json, params=call.params, headers=headers)


async def _key_with(w: World, scopes: list[str]) -> str:
    key = w.a_keys.get(",".join(scopes))
    if key is None:
        key = (await create_api_key(w.client, w.a["owner"], scopes))["key"]
        w.a_keys[",".join(scopes)] = key
    return key


async def test_route_matrix(app: Any, world: World) -> None:
    attempts = 0
    for method, suffix, access in tenant_routes(app):
        case = CASES[(method, suffix)]
        needed_role = case.effective_role or access.role
        tenant = world.tenant_a()
        label = f"{method} {suffix or '/'}"

        # Anonymous.
        resp = await _send(world, method, suffix, tenant, await case.make(world), None)
        assert_problem(resp, 401), label
        attempts += 1

        # Each role of tenant A.
        for role, account in world.a.items():
            call = await case.make(world)
            resp = await _send(world, method, suffix, tenant, call, account.access_token)
            if ROLE_RANK[role] >= ROLE_RANK[needed_role]:
                assert resp.status_code == case.ok, (label, role, resp.text)
            else:
                assert_problem(resp, 403)
            attempts += 1

        # API keys of tenant A: with the scope the route needs, and without it.
        # Every tenant route names the scope a key needs (issue 15: no "any key" routes).
        assert access.scope is not None, label
        good_scopes = [access.scope]
        resp = await _send(
            world,
            method,
            suffix,
            tenant,
            await case.make(world),
            await _key_with(world, good_scopes),
        )
        assert resp.status_code == case.ok, (label, "api key", resp.text)
        attempts += 1
        if access.scope is not None:
            wrong = "bots:read" if access.scope != "bots:read" else "chat"
            resp = await _send(
                world,
                method,
                suffix,
                tenant,
                await case.make(world),
                await _key_with(world, [wrong]),
            )
            assert_problem(resp, 403)
            attempts += 1
        # A `chat` key (pasted into OpenAI clients) reaches no tenant route (issue 15 §5).
        resp = await _send(
            world, method, suffix, tenant, await case.make(world), await _key_with(world, ["chat"])
        )
        assert_problem(resp, 403)
        attempts += 1

        # Tenant B's credentials against tenant A: 404, never 403, never data.
        for token in (world.b_owner.access_token, world.b_key):
            call = await case.make(world)
            resp = await _send(world, method, suffix, tenant, call, token)
            body = assert_problem(resp, 404)
            assert tenant not in resp.text.replace(body["instance"], "")
            attempts += 1

        # A's owner with B's tenant id in the path: 404.
        resp = await _send(
            world,
            method,
            suffix,
            world.b_owner.tenant_id,
            await case.make(world),
            world.a["owner"].access_token,
        )
        assert_problem(resp, 404)
        attempts += 1

        # A's owner, A's tenant, but B's resource id in the path: 404.
        if case.foreign_param:
            call = await case.make(world)
            call.path_params[case.foreign_param] = world.b_ids[case.foreign_param]
            resp = await _send(world, method, suffix, tenant, call, world.a["owner"].access_token)
            assert_problem(resp, 404)
            attempts += 1
            # ...and the foreign row is untouched (checked through B's own eyes).
    assert attempts > 100

    # B's resources survived every attempt above.
    b = world.b_owner
    members = (
        await world.client.get(f"/v1/tenants/{b.tenant_id}/members", headers=b.headers)
    ).json()
    assert {m["user_id"] for m in members["items"]} >= {world.b_ids["user_id"]}
    invs = (
        await world.client.get(f"/v1/tenants/{b.tenant_id}/invitations", headers=b.headers)
    ).json()
    assert world.b_ids["invitation_id"] in {i["id"] for i in invs["items"]}
    keys = (await world.client.get(f"/v1/tenants/{b.tenant_id}/api-keys", headers=b.headers)).json()
    assert world.b_ids["key_id"] in {k["id"] for k in keys["items"]}
    for kind, param in (
        ("bots", "bot_id"),
        ("channels", "channel_id"),
        ("knowledge/sources", "source_id"),
        ("webhooks", "webhook_id"),
        ("automations", "rule_id"),
    ):
        got = await world.client.get(
            f"/v1/tenants/{b.tenant_id}/{kind}/{world.b_ids[param]}", headers=b.headers
        )
        assert got.status_code == 200
