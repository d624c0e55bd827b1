"""The console over ASGI: cookie session and CSRF, the onboarding checklist ticked from real
state, the same doors as the API (404 for another workspace, 403 for a missing role), the
same audit trail, and stored text shown inert."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import pytest

from parley.console.render import counted
from tests.conftest import Account, add_member, ingest_now, register
from tests.xss_corpus import CORPUS

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def console_client(app: Any, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 1234))
    # https: the cookies are Secure outside development, and httpx keeps them to https.
    return httpx.AsyncClient(transport=transport, base_url="https://testserver")


async def sign_in(c: httpx.AsyncClient, account: Account) -> None:
    token = csrf_of((await c.get("/console/login")).text)
    resp = await c.post(
        "/console/login",
        data={"email": account.email, "password": account.password, "csrf_token": token},
    )
    assert resp.status_code == 303, resp.text
    assert "parley_console" in c.cookies


async def post(
    c: httpx.AsyncClient, page_url: str, url: str, data: dict[str, Any]
) -> httpx.Response:
    token = csrf_of((await c.get(page_url)).text)
    return await c.post(url, data={**data, "csrf_token": token})


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Account:
    return await register(client, "console")


async def test_sign_up_sets_a_hardened_cookie_and_lands_on_the_checklist(app: Any) -> None:
    async with await console_client(app, "10.200.0.1") as c:
        page = await c.get("/console/signup")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        resp = await c.post(
            "/console/signup",
            data={
                "email": "Console-Signup@example.com",
                "password": "correct horse battery staple",
                "tenant_name": "Acme",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert resp.status_code == 303, resp.text
        cookie = next(h for h in resp.headers.get_list("set-cookie") if "parley_console=" in h)
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        home = await c.get(resp.headers["location"])
        assert home.status_code == 200
        assert "Get started" in home.text
        assert "Create a bot" in home.text


async def test_failed_sign_in_keeps_the_email_and_says_why(app: Any, owner: Account) -> None:
    async with await console_client(app, "10.200.0.2") as c:
        token = csrf_of((await c.get("/console/login")).text)
        resp = await c.post(
            "/console/login",
            data={"email": owner.email, "password": "wrong password", "csrf_token": token},
        )
        assert resp.status_code == 422
        assert "do not match an account" in resp.text
        assert f'value="{owner.email}"' in resp.text
        assert "parley_console" not in c.cookies


async def test_signup_field_errors_sit_next_to_their_fields(app: Any) -> None:
    async with await console_client(app, "10.200.0.3") as c:
        token = csrf_of((await c.get("/console/signup")).text)
        resp = await c.post(
            "/console/signup",
            data={"email": "not-an-email", "password": "x", "tenant_name": "", "csrf_token": token},
        )
        assert resp.status_code == 422
        assert 'id="f-email-error"' in resp.text
        assert 'id="f-tenant_name-error"' in resp.text
        assert 'value="not-an-email"' in resp.text


async def test_state_changing_requests_without_the_csrf_token_are_refused(
    app: Any, owner: Account
) -> None:
    async with await console_client(app, "10.200.0.4") as c:
        await c.get("/console/login")
        refused = await c.post(
            "/console/login", data={"email": owner.email, "password": owner.password}
        )
        assert refused.status_code == 403
        assert "form expired" in refused.text
        await sign_in(c, owner)
        base = f"/console/w/{owner.tenant_id}"
        no_token = await c.post(f"{base}/bots", data={"name": "Sneaky"})
        assert no_token.status_code == 403
        wrong = await c.post(
            f"{base}/bots", data={"name": "Sneaky"}, headers={"X-CSRF-Token": "0" * 64}
        )
        assert wrong.status_code == 403
        bots = await c.get(f"{base}/bots")
        assert "Sneaky" not in bots.text
        ok = await c.post(
            f"{base}/bots", data={"name": "Fine"}, headers={"X-CSRF-Token": csrf_of(bots.text)}
        )
        assert ok.status_code == 303


async def test_sign_out_revokes_the_session(app: Any, owner: Account) -> None:
    async with await console_client(app, "10.200.0.5") as c:
        await sign_in(c, owner)
        stolen = c.cookies["parley_console"]
        home = await c.get(f"/console/w/{owner.tenant_id}/")
        out = await c.post("/console/logout", data={"csrf_token": csrf_of(home.text)})
        assert out.status_code == 303
    async with await console_client(app, "10.200.0.6") as thief:
        thief.cookies.set("parley_console", stolen)
        resp = await thief.get(f"/console/w/{owner.tenant_id}/")
        assert resp.status_code == 303
        assert resp.headers["location"].startswith("/console/login")


async def test_sign_in_rotates_the_cookie(app: Any, owner: Account) -> None:
    async with await console_client(app, "10.200.0.7") as c:
        await sign_in(c, owner)
        first = c.cookies["parley_console"]
        await sign_in(c, owner)
        assert c.cookies["parley_console"] != first


async def test_signing_in_opens_the_only_workspace_and_lists_several(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    home = f"/console/w/{owner.tenant_id}/"
    async with await console_client(app, "10.200.0.240") as c:
        await sign_in(c, owner)
        plain = await c.get("/console/workspaces")
        assert (plain.status_code, plain.headers["location"]) == (303, home)
        # The boosted sign-in form: htmx follows HX-Location with an htmx request.
        boosted = await c.get("/console/workspaces", headers={"HX-Request": "true"})
        assert (boosted.status_code, boosted.headers["hx-location"]) == (200, home)
    other = await register(client, "console-second")  # owns a second workspace, invites owner
    inv = await client.post(
        f"/v1/tenants/{other.tenant_id}/invitations",
        json={"email": owner.email, "role": "viewer"},
        headers=other.headers,
    )
    assert inv.status_code == 201, inv.text
    accepted = await client.post(
        f"/v1/invitations/{inv.json()['token']}/accept", headers=owner.headers
    )
    assert accepted.status_code == 201, accepted.text
    async with await console_client(app, "10.200.0.241") as c:
        await sign_in(c, owner)
        listed = await c.get("/console/workspaces", headers={"HX-Request": "true"})
        assert listed.status_code == 200
        assert "hx-location" not in listed.headers
        assert listed.text.count('class="card"') == 2


async def test_a_removed_member_loses_the_workspace_at_once(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    agent = await add_member(client, owner, "agent")
    async with await console_client(app, "10.200.0.8") as c:
        await sign_in(c, agent)
        assert (await c.get(f"/console/w/{owner.tenant_id}/")).status_code == 200
        removed = await client.delete(
            f"/v1/tenants/{owner.tenant_id}/members/{agent.user_id}", headers=owner.headers
        )
        assert removed.status_code == 204, removed.text
        # Removal revokes the member's sessions (issue 15): the console sends them to sign in.
        gone = await c.get(f"/console/w/{owner.tenant_id}/")
        assert gone.status_code == 303
        assert gone.headers["location"].startswith("/console/login")


async def test_another_workspaces_ids_answer_404(app: Any, client: httpx.AsyncClient) -> None:
    mine = await register(client, "mine")
    theirs = await register(client, "theirs")
    bot = await client.post(
        f"/v1/tenants/{theirs.tenant_id}/bots", json={"name": "Theirs"}, headers=theirs.headers
    )
    their_bot = bot.json()["id"]
    async with await console_client(app, "10.200.0.9") as c:
        await sign_in(c, mine)
        for url in (
            f"/console/w/{theirs.tenant_id}/",
            f"/console/w/{theirs.tenant_id}/bots",
            f"/console/w/{mine.tenant_id}/bots/{their_bot}",
            f"/console/w/{mine.tenant_id}/bots/not-a-uuid",
            f"/console/w/{mine.tenant_id}/knowledge/sources/{their_bot}",
            f"/console/w/{mine.tenant_id}/channels/{their_bot}",
        ):
            resp = await c.get(url)
            assert resp.status_code == 404, (url, resp.status_code)
            assert "Theirs" not in resp.text


async def test_a_viewer_sees_no_edit_controls_and_posting_anyway_is_403(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    bot = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots", json={"name": "Helper"}, headers=owner.headers
    )
    bot_id = bot.json()["id"]
    viewer = await add_member(client, owner, "viewer")
    base = f"/console/w/{owner.tenant_id}"
    async with await console_client(app, "10.200.0.10") as c:
        await sign_in(c, viewer)
        pages = {
            f"{base}/": f'action="{base}/bots"',
            f"{base}/bots": f'action="{base}/bots"',
            f"{base}/bots/{bot_id}": "/draft",
            f"{base}/knowledge": "/add/text",
            f"{base}/channels": "/new/widget",
        }
        for url, control in pages.items():
            page = await c.get(url)
            assert page.status_code == 200, url
            assert control not in page.text, url
        token = csrf_of((await c.get(f"{base}/bots")).text)
        for url, data in (
            (f"{base}/bots", {"name": "Nope"}),
            (f"{base}/bots/{bot_id}/draft", {"instructions": "x"}),
            (f"{base}/knowledge/add/text", {"title": "t", "text": "x"}),
            (
                f"{base}/channels/new/widget",
                {"bot_id": bot_id, "allowed_origins": "https://a.example"},
            ),
        ):
            resp = await c.post(url, data={**data, "csrf_token": token})
            assert resp.status_code == 403, url


async def test_onboarding_ticks_each_step_from_real_state(
    app: Any, owner: Account, admin_conn: Any
) -> None:
    base = f"/console/w/{owner.tenant_id}"

    def ticked(page: str) -> list[str]:
        return re.findall(r'class="step done[^"]*" id="step-(\w+)"', page)

    async with await console_client(app, "10.200.0.11") as c:
        await sign_in(c, owner)
        assert ticked((await c.get(f"{base}/")).text) == []
        made = await post(c, f"{base}/", f"{base}/bots", {"name": "Support", "back": "home"})
        assert made.status_code == 303
        assert made.headers["location"] == f"{base}/"
        assert ticked((await c.get(f"{base}/")).text) == ["bot"]
        added = await post(
            c,
            f"{base}/",
            f"{base}/knowledge/add/text",
            {
                "title": "Shipping",
                "text": "Parcels ship within two days from Lyon.",
                "back": "home",
            },
        )
        assert added.status_code == 303
        home = (await c.get(f"{base}/")).text
        assert ticked(home) == ["bot"]
        assert "waiting to be indexed" in home
        job_id = await admin_conn.fetchval(
            "SELECT id FROM kb_jobs WHERE tenant_id = $1", uuid.UUID(owner.tenant_id)
        )
        assert job_id is not None
        await ingest_now(app, owner.tenant_id, str(job_id))
        home = (await c.get(f"{base}/")).text
        assert ticked(home) == ["bot", "knowledge"]
        bot_id = re.search(rf"{base}/bots/([0-9a-f-]+)/try", home).group(1)  # type: ignore[union-attr]
        answer = await post(
            c,
            f"{base}/",
            f"{base}/bots/{bot_id}/try",
            {"question": "How many days before parcels ship from Lyon?"},
        )
        assert answer.status_code == 200
        assert "Shipping" in answer.text
        assert "score" in answer.text
        assert ticked((await c.get(f"{base}/")).text) == ["bot", "knowledge", "try"]
        widget = await post(
            c,
            f"{base}/",
            f"{base}/channels/new/widget",
            {"bot_id": bot_id, "allowed_origins": "shop.example.com/products", "back": "home"},
        )
        assert widget.status_code == 303, widget.text
        home = (await c.get(f"{base}/")).text
        assert ticked(home) == ["bot", "knowledge", "try", "widget"]
        assert "https://shop.example.com" in home
        assert "data-widget-key=&#34;wk_" in home  # the snippet, escaped inside the textarea


async def test_the_first_checklist_form_creates_the_bot_and_its_first_knowledge(
    app: Any, owner: Account, admin_conn: Any
) -> None:
    base = f"/console/w/{owner.tenant_id}"
    tenant = uuid.UUID(owner.tenant_id)
    async with await console_client(app, "10.200.0.13") as c:
        await sign_in(c, owner)
        home = (await c.get(f"{base}/")).text
        assert 'name="text"' in home
        assert "What should it know?" in home
        # A blank name: nothing is created (neither the bot nor the source), the pasted text
        # comes back with the name's error.
        refused = await post(
            c, f"{base}/", f"{base}/bots", {"name": "", "text": "Kept text", "back": "home"}
        )
        assert refused.status_code == 422
        assert 'id="onb-name-error"' in refused.text
        assert ">Kept text</textarea>" in refused.text
        for table in ("bots", "kb_sources"):
            count = f"SELECT count(*) FROM {table} WHERE tenant_id = $1"
            assert await admin_conn.fetchval(count, tenant) == 0
        made = await post(
            c,
            f"{base}/",
            f"{base}/bots",
            {
                "name": "Helper",
                "text": "Returns are free for 30 days.\nKeep the receipt.",
                "back": "home",
            },
        )
        assert made.status_code == 303
        assert made.headers["location"] == f"{base}/"
        titles = await admin_conn.fetch("SELECT title FROM kb_sources WHERE tenant_id = $1", tenant)
        assert [r["title"] for r in titles] == ["Returns are free for 30 days."]
        home = (await c.get(f"{base}/")).text
        assert 'id="step-bot"' in home
        assert "waiting to be indexed" in home


async def test_a_console_action_leaves_the_same_audit_entry_as_the_api(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    base = f"/console/w/{owner.tenant_id}"
    async with await console_client(app, "10.200.0.12") as c:
        await sign_in(c, owner)
        made = await post(c, f"{base}/bots", f"{base}/bots", {"name": "Same"})
        assert made.status_code == 303
    api = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots", json={"name": "Same"}, headers=owner.headers
    )
    assert api.status_code == 201
    log = await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=owner.headers)
    entries = [e for e in log.json()["items"] if e["action"] == "bot.created"]
    assert len(entries) == 2
    by_api, by_console = entries  # newest first

    def shape(e: dict[str, Any]) -> dict[str, Any]:
        after = {k: v for k, v in e["after"].items() if k not in ("id", "version_id")}
        after.pop("created_at", None)
        after.pop("updated_at", None)
        return {
            "actor": e["actor"],
            "action": e["action"],
            "target": e["target_type"],
            "after": after,
        }

    assert shape(by_console) == shape(by_api)
    assert by_console["actor"] == f"user:{owner.user_id}"


async def test_the_inbox_takes_over_replies_notes_tags_and_resolves(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    from tests.conftest import create_widget
    from tests.conversations.factories import create_conversation

    w = await create_widget(client, owner)
    conv = await create_conversation(app.state.runtime.db, owner.tenant_id, w.channel_id, w.bot_id)
    agent = await add_member(client, owner, "agent")
    viewer = await add_member(client, owner, "viewer")
    base = f"/console/w/{owner.tenant_id}/inbox"
    page_url = f"{base}?c={conv}"
    async with await console_client(app, "10.200.0.13") as c:
        await sign_in(c, viewer)
        seen = await c.get(page_url)
        assert seen.status_code == 200
        assert "Take over" not in seen.text
        refused = await c.post(f"{base}/{conv}/assign", data={"csrf_token": csrf_of(seen.text)})
        assert refused.status_code == 403
    async with await console_client(app, "10.200.0.14") as c:
        await sign_in(c, agent)
        for action, data in (
            ("assign", {}),
            ("reply", {"body": "Hello <b>there</b>, I am a person."}),
            ("note", {"body": "VIP customer"}),
            ("tag", {"tag": "billing"}),
        ):
            resp = await post(c, page_url, f"{base}/{conv}/{action}", data)
            assert resp.status_code == 200, (action, resp.text[:300])
        assert "Hello &lt;b&gt;there&lt;/b&gt;, I am a person." in resp.text
        # The list shows what was last said in each conversation, and by whom (escaped).
        assert (
            '<span class="preview"><span class="who">Agent:</span> Hello &lt;b&gt;there&lt;/b&gt;,'
            " I am a person.</span>"
        ) in resp.text
        assert "VIP customer" in resp.text
        assert "billing" in resp.text
        bad_tag = await post(c, page_url, f"{base}/{conv}/tag", {"tag": "a/b"})
        assert bad_tag.status_code == 422
        assert 'id="tag-tag-error"' in bad_tag.text
        done = await post(c, page_url, f"{base}/{conv}/resolve", {})
        assert done.status_code == 200
    detail = await client.get(
        f"/v1/tenants/{owner.tenant_id}/conversations/{conv}", headers=owner.headers
    )
    body = detail.json()
    assert body["handoff_status"] == "resolved"
    assert body["tags"] == ["billing"]
    assert [n["body"] for n in body["notes"]] == ["VIP customer"]
    other = await register(client, "other-inbox")
    async with await console_client(app, "10.200.0.15") as c:
        await sign_in(c, other)
        assert (await c.get(f"/console/w/{other.tenant_id}/inbox?c={conv}")).status_code == 404


async def test_team_invitation_accepted_in_the_console_and_api_key_shown_once(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    invitee = await register(client, "invitee")
    base = f"/console/w/{owner.tenant_id}"
    async with await console_client(app, "10.200.0.16") as c:
        await sign_in(c, owner)
        invited = await post(
            c, f"{base}/team", f"{base}/team/invite", {"email": invitee.email, "role": "editor"}
        )
        assert invited.status_code == 200
        link = re.search(r'id="invite-link" readonly value="([^"]+)"', invited.text)
        assert link is not None
        made = await post(
            c, f"{base}/api-keys", f"{base}/api-keys", {"name": "ci", "scopes[]": "chat"}
        )
        key = re.search(r'value="(prl_[^"]+)"', made.text)
        assert key is not None
        again = await c.get(f"{base}/api-keys")
        assert key.group(1) not in again.text
        audit_page = await c.get(f"{base}/audit?verify=1")
        assert "The chain is intact" in audit_page.text
        # Who did it, as a person reads it: the member's email (the id on hover).
        assert f'<span title="user:{owner.user_id}">{owner.email}</span>' in audit_page.text
        assert f"<code>user:{owner.user_id}</code>" not in audit_page.text
    path = link.group(1).split("testserver", 1)[1]
    async with await console_client(app, "10.200.0.17") as c:
        bounced = await c.get(path)
        assert bounced.status_code == 303
        assert bounced.headers["location"] == f"/console/login?next={path}"
        await sign_in(c, invitee)
        accepted = await post(c, path, path, {})
        assert accepted.status_code == 303
        assert accepted.headers["location"] == f"/console/w/{owner.tenant_id}/"
        switcher = await c.get(accepted.headers["location"])
        assert 'id="workspace-switch"' in switcher.text


async def test_a_pending_invitation_is_revoked_from_the_team_page(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    """An invitation sent to the wrong address is taken back: it leaves the list, its link no
    longer works, and the audit log says who revoked it."""
    invitee = await register(client, "revoked-invitee")
    base = f"/console/w/{owner.tenant_id}"
    async with await console_client(app, "10.200.0.26") as c:
        await sign_in(c, owner)
        invited = await post(
            c, f"{base}/team", f"{base}/team/invite", {"email": invitee.email, "role": "agent"}
        )
        link = re.search(r'id="invite-link" readonly value="([^"]+)"', invited.text)
        assert link is not None
        team = (await c.get(f"{base}/team")).text
        assert f"Revoke the invitation of {invitee.email}" in team
        action = re.search(r'action="([^"]+/invitations/[^"]+/revoke)"', team)
        assert action is not None
        revoked = await c.post(action.group(1), data={"csrf_token": csrf_of(team)})
        assert revoked.status_code == 303
        assert invitee.email not in (await c.get(f"{base}/team")).text
        again = await c.post(action.group(1), data={"csrf_token": csrf_of(team)})
        assert again.status_code == 404  # already revoked: said on the page, nothing changes
    token = link.group(1).rsplit("/", 1)[1]
    accept = await client.post(f"/v1/invitations/{token}/accept", headers=invitee.headers)
    assert accept.status_code == 404, accept.text
    audit = await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=owner.headers)
    entry = next(e for e in audit.json()["items"] if e["action"] == "invitation.revoked")
    assert entry["actor"] == f"user:{owner.user_id}"


async def test_stored_html_and_script_are_shown_inert(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    base = f"/console/w/{owner.tenant_id}"
    async with await console_client(app, "10.200.0.18") as c:
        await sign_in(c, owner)
        for i, hostile in enumerate(CORPUS):
            made = await post(c, f"{base}/bots", f"{base}/bots", {"name": hostile[:120]})
            assert made.status_code == 303, made.text
            source = await post(
                c,
                f"{base}/knowledge",
                f"{base}/knowledge/add/text",
                {"title": hostile[:300], "text": hostile},
            )
            assert source.status_code == 303, (i, source.text[:400])
        for url in (f"{base}/bots", f"{base}/knowledge", f"{base}/", f"{base}/audit"):
            page = (await c.get(url)).text
            assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page or url.endswith("audit")
            assert "<script>window" not in page
            assert "<svg onload" not in page
            assert '<img src="https://evil' not in page


def console_routes(app: Any) -> list[tuple[str, str, Any]]:
    from tests.routes import api_routes

    out = []
    for r in api_routes(app):
        stack = list(r.dependant.dependencies)
        while stack:
            dep = stack.pop()
            access = getattr(dep.call, "console_access", None)
            if access is not None:
                out.append((r.method, r.path, access))
                break
            stack.extend(dep.dependencies)
    return out


async def test_every_console_route_needs_a_session_and_every_post_a_csrf_token(
    app: Any, owner: Account
) -> None:
    """Generated from the route table, so no console route is forgotten."""
    routes = console_routes(app)
    assert len(routes) >= 30
    fill = {"tenant_id": owner.tenant_id, "token": "inv_x", "kind": "text", "action": "x"}
    async with await console_client(app, "10.200.0.19") as anon:
        for method, path, _ in routes:
            url = re.sub(r"\{(\w+)\}", lambda m: fill.get(m.group(1), str(uuid.uuid4())), path)
            resp = await anon.request(method, url)
            if method == "GET":
                assert resp.status_code == 303, (method, path, resp.status_code)
                assert resp.headers["location"].startswith("/console/login"), path
            else:
                assert resp.status_code == 403, (method, path, resp.status_code)
                assert "form expired" in resp.text
    async with await console_client(app, "10.200.0.20") as c:
        await sign_in(c, owner)
        for method, path, _ in routes:
            if method == "GET":
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: fill.get(m.group(1), str(uuid.uuid4())), path)
            resp = await c.request(method, url, data={"name": "x"})
            assert resp.status_code == 403, (method, path, resp.status_code)


async def test_webhooks_providers_and_platform_admin(
    app: Any, client: httpx.AsyncClient, owner: Account, admin_conn: Any
) -> None:
    base = f"/console/w/{owner.tenant_id}"
    async with await console_client(app, "10.200.0.21") as c:
        await sign_in(c, owner)
        made = await post(
            c,
            f"{base}/webhooks",
            f"{base}/webhooks",
            {"url": "https://93.184.215.14/hook", "events[]": "conversation.started"},
        )
        assert made.status_code == 200, re.findall(r"<p class=\"(?:alert|error)\"[^<]*", made.text)
        secret = re.search(r'id="wh-secret" readonly value="(whsec_[^"]+)"', made.text)
        assert secret is not None
        listed = await c.get(f"{base}/webhooks")
        assert secret.group(1) not in listed.text
        assert "a person takes or is given a conversation" in listed.text  # events explained
        bad = await post(
            c,
            f"{base}/webhooks",
            f"{base}/webhooks",
            {"url": "not a url", "events[]": ["handoff.requested", "usage.threshold"]},
        )
        assert bad.status_code == 422
        for kept in ("handoff.requested", "usage.threshold"):
            assert f'value="{kept}" checked' in bad.text  # the choice survives the error
        assert 'value="message.created" checked' not in bad.text
        webhook_id = re.search(rf"{base}/webhooks/([0-9a-f-]{{36}})/rotate", listed.text)
        assert webhook_id is not None
        rotated = await post(
            c, f"{base}/webhooks", f"{base}/webhooks/{webhook_id.group(1)}/rotate", {}
        )
        new_secret = re.search(r'id="wh-secret" readonly value="(whsec_[^"]+)"', rotated.text)
        assert new_secret is not None
        assert new_secret.group(1) != secret.group(1)
        assert (await c.get(f"{base}/webhooks/{webhook_id.group(1)}")).status_code == 200

        saved = await post(
            c, f"{base}/providers", f"{base}/providers/openai", {"api_key": "sk-live-secret-1234"}
        )
        assert saved.status_code == 303
        page = await c.get(f"{base}/providers")
        assert "sk-live-secret" not in page.text
        assert "1234" in page.text
        bad = await post(c, f"{base}/providers", f"{base}/providers/openai", {"api_key": ""})
        assert bad.status_code == 422
        assert 'id="openai-api_key-error"' in bad.text
        # Forgetting the key: the workspace goes back to the server's default, audited; the
        # button is behind a summary that says so.
        forget = re.search(
            r'<details class="confirm"><summary>Forget the OpenAI key…</summary>(.*?)</details>',
            page.text,
            re.S,
        )
        assert forget is not None
        assert "fall back to the platform" in forget.group(1)
        forgot = await post(c, f"{base}/providers", f"{base}/providers/openai/forget", {})
        assert forgot.status_code == 303
        page = await c.get(f"{base}/providers")
        assert "Forget the OpenAI key" not in page.text
        assert "1234" not in page.text
        again = await post(c, f"{base}/providers", f"{base}/providers/openai/forget", {})
        assert again.status_code == 404
        log = await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=owner.headers)
        assert any(e["action"] == "provider_credential.deleted" for e in log.json()["items"])

        rule = await post(
            c,
            f"{base}/automations",
            f"{base}/automations",
            {
                "name": "Billing words",
                "event": "message.created",
                "condition.type": "message_contains",
                "condition.value": "invoice",
                "action.type": "tag_conversation",
                "action.tag": "billing",
            },
        )
        assert rule.status_code == 303, re.findall(r'class="(?:alert|error)"[^<]*', rule.text)
        rules = await c.get(f"{base}/automations")
        assert "Billing words" in rules.text
        assert "“invoice”" in rules.text
        # Deleting a rule takes a second click that says what it does; then it is gone.
        behind = re.search(
            r'<details class="confirm"><summary>Delete…</summary>(.*?)</details>', rules.text, re.S
        )
        assert behind is not None
        assert "stops acting on new events" in behind.group(1)
        assert 'class="danger">Delete Billing words</button>' in behind.group(1)
        delete_rule = re.search(r'action="([^"]+/delete)"', behind.group(1))
        assert delete_rule is not None
        deleted = await post(c, f"{base}/automations", delete_rule.group(1), {})
        assert deleted.status_code == 303
        assert "Billing words" not in (await c.get(f"{base}/automations")).text
        assert (await post(c, f"{base}/automations", delete_rule.group(1), {})).status_code == 404
        bad_rule = await post(
            c,
            f"{base}/automations",
            f"{base}/automations",
            {
                "name": "x",
                "event": "message.created",
                "condition.type": "message_contains",
                "action.type": "tag_conversation",
                "action.tag": "ok",
            },
        )
        assert bad_rule.status_code == 422
        assert 'id="rule-condition-value-error"' in bad_rule.text
        usage_page = await c.get(f"{base}/usage")
        assert usage_page.status_code == 200
        assert "Conversations this month" in usage_page.text
        assert (await c.get("/console/admin")).status_code == 403
        await admin_conn.execute(
            "UPDATE users SET is_platform_admin = true WHERE id = $1", uuid.UUID(owner.user_id)
        )
        overview = await c.get("/console/admin")
        assert overview.status_code == 200
        # Suspending is behind a second click that says what it does (the list is paged, so
        # any active workspace's row shows the markup, not necessarily this one's).
        confirm = re.search(
            r'<details class="confirm"><summary>Suspend…</summary>(.*?)</details>',
            overview.text,
            re.S,
        )
        assert confirm is not None
        assert "403 tenant_suspended" in confirm.group(1)
        assert 'class="danger">Suspend ' in confirm.group(1)
        suspended = await c.post(
            f"/console/admin/tenants/{owner.tenant_id}/suspend",
            data={"csrf_token": csrf_of(overview.text)},
        )
        assert suspended.status_code == 303
        blocked = await c.get(f"{base}/")
        assert blocked.status_code == 403
        assert "suspended" in blocked.text
        await c.post(
            f"/console/admin/tenants/{owner.tenant_id}/reactivate",
            data={"csrf_token": csrf_of(overview.text)},
        )
        assert (await c.get(f"{base}/")).status_code == 200


async def test_the_preview_streams_to_its_asker_only(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    bot = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots", json={"name": "Streamer"}, headers=owner.headers
    )
    bot_id = bot.json()["id"]
    base = f"/console/w/{owner.tenant_id}/bots/{bot_id}"
    other = await add_member(client, owner, "editor")
    async with await console_client(app, "10.200.0.22") as c:
        await sign_in(c, owner)
        page = await c.get(base)
        started = await c.post(
            f"{base}/try",
            data={"question": "<b>Anything</b>?"},
            headers={
                "HX-Request": "true",
                "HX-Target": "try-answer",
                "X-CSRF-Token": csrf_of(page.text),
            },
        )
        assert started.status_code == 200
        assert "&lt;b&gt;Anything&lt;/b&gt;?" in started.text
        url = re.search(r'sse-connect="([^"]+)"', started.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
        stream = await c.get(url)
        assert stream.status_code == 200
        names = [line[7:] for line in stream.text.splitlines() if line.startswith("event: ")]
        assert names[0] == "delta"
        assert names[-2:] == ["sources", "done"]
    async with await console_client(app, "10.200.0.23") as c:
        await sign_in(c, other)
        assert (await c.get(url)).status_code == 404


async def test_telegram_channel_shows_its_webhook_state(
    data_dir: Any, test_db: Any, fake_openai: Any
) -> None:
    """A Telegram channel added in the console (the token pasted), then its page asks Telegram
    (a local server speaking the Bot API) where its webhook points."""
    from parley.app import create_app
    from tests.conftest import make_settings
    from tests.fakes.telegram_server import FakeTelegram

    telegram = FakeTelegram()
    telegram.start()
    try:
        settings = make_settings(
            data_dir,
            parley_outbound_allow_private=True,
            parley_telegram_api_base_url=telegram.base_url,
            openai_base_url=fake_openai.base_url,
            openai_api_key="sk-test",
        )
        application = create_app(settings, database_url=test_db.app_url)
        async with (
            application.router.lifespan_context(application),
            await console_client(application, "10.200.0.24") as c,
        ):
            owner = await register(c, "telegram-console")
            bot = await c.post(
                f"/v1/tenants/{owner.tenant_id}/bots", json={"name": "T"}, headers=owner.headers
            )
            base = f"/console/w/{owner.tenant_id}/channels"
            await sign_in(c, owner)
            bad = await post(
                c,
                base,
                f"{base}/new/telegram",
                {"bot_id": bot.json()["id"], "config.bot_token": "nope"},
            )
            assert bad.status_code == 422
            assert 'id="telegram-config-bot_token-error"' in bad.text
            token = "123456:" + "A" * 35
            made = await post(
                c,
                base,
                f"{base}/new/telegram",
                {"bot_id": bot.json()["id"], "config.bot_token": token},
            )
            assert made.status_code == 200, made.text[-800:]
            assert token not in made.text
            channel_id = re.search(rf"{base}/([0-9a-f-]{{36}})", made.text).group(1)  # type: ignore[union-attr]
            page = await c.get(f"{base}/{channel_id}")
            assert "Telegram delivers this bot's messages here" in page.text
            telegram.webhooks[token]["url"] = "https://elsewhere.example/hook"
            moved = await c.get(f"{base}/{channel_id}")
            assert "points elsewhere" in moved.text
    finally:
        telegram.stop()


async def test_a_webhook_channels_secret_rotates_from_the_console(
    app: Any, client: httpx.AsyncClient, owner: Account, admin_conn: Any
) -> None:
    bot = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots", json={"name": "Hooked"}, headers=owner.headers
    )
    made = await client.post(
        f"/v1/tenants/{owner.tenant_id}/channels",
        json={
            "type": "webhook",
            "bot_id": bot.json()["id"],
            "config": {"callback_url": "https://hooks.example/parley"},
        },
        headers=owner.headers,
    )
    channel_id, first = made.json()["id"], made.json()["webhook_secret"]
    page_url = f"/console/w/{owner.tenant_id}/channels/{channel_id}"
    viewer = await add_member(client, owner, "viewer")
    other = await register(client, "console-rot-other")
    async with await console_client(app, "10.200.0.14") as c:
        await sign_in(c, owner)
        page = (await c.get(page_url)).text
        assert "Rotate secret" in page
        assert "whsec_" not in page
        rotated = await post(c, page_url, f"{page_url}/rotate", {"grace_seconds": "3600"})
        assert rotated.status_code == 200
        shown = re.search(r'id="secret-once" readonly value="(whsec_[^"]+)"', rotated.text)
        assert shown is not None
        assert shown.group(1) != first
        assert "The previous secret still verifies until" in rotated.text
        again = (await c.get(page_url)).text  # shown once: never again
        assert shown.group(1) not in again
        assert "whsec_" not in again
        assert "The previous secret still verifies until" in again
        # The same audit entry as the API's rotation, by this user.
        row = await admin_conn.fetchrow(
            "SELECT actor, after FROM audit_log WHERE action = 'channel.secret_rotated'"
            " AND target_id = $1",
            channel_id,
        )
        assert row["actor"] == f"user:{owner.user_id}"
        assert "whsec_" not in row["after"]
        bad = await post(c, page_url, f"{page_url}/rotate", {"grace_seconds": "-5"})
        assert bad.status_code == 422
        assert 'id="f-grace-error"' in bad.text
    async with await console_client(app, "10.200.0.15") as c:
        await sign_in(c, viewer)
        page = (await c.get(page_url)).text
        assert "Rotate secret" not in page
        refused = await post(c, page_url, f"{page_url}/rotate", {"grace_seconds": "0"})
        assert refused.status_code == 403
    async with await console_client(app, "10.200.0.16") as c:
        await sign_in(c, other)
        theirs = f"/console/w/{other.tenant_id}/channels/{channel_id}"
        assert (await c.get(theirs)).status_code == 404
        home = f"/console/w/{other.tenant_id}/"
        assert (await post(c, home, f"{theirs}/rotate", {"grace_seconds": "0"})).status_code == 404
    count = (
        "SELECT count(*) FROM audit_log WHERE action = 'channel.secret_rotated' AND target_id = $1"
    )
    assert await admin_conn.fetchval(count, channel_id) == 1


async def test_indexing_progress_is_streamed_until_nothing_is_busy(
    app: Any, client: httpx.AsyncClient, owner: Account, admin_conn: Any
) -> None:
    base = f"/console/w/{owner.tenant_id}"
    other = await register(client, "console-progress-other")
    async with await console_client(app, "10.200.0.17") as c:
        await sign_in(c, owner)
        added = await post(
            c, f"{base}/knowledge", f"{base}/knowledge/add/text", {"text": "Opening hours: 9 to 5."}
        )
        assert added.status_code == 303
        page = (await c.get(f"{base}/knowledge")).text
        # Busy: the list listens to the stream (no polling); home's knowledge step too.
        assert f'sse-connect="{base}/knowledge/events"' in page
        assert "every 2s" not in page
        assert f'sse-connect="{base}/knowledge/events"' in (await c.get(f"{base}/")).text

        async def listen() -> str:
            resp = await c.get(f"{base}/knowledge/events")
            assert resp.headers["content-type"].startswith("text/event-stream")
            return resp.text

        stream = asyncio.create_task(listen())
        job_id = await admin_conn.fetchval(
            "SELECT id FROM kb_jobs WHERE tenant_id = $1", uuid.UUID(owner.tenant_id)
        )
        await ingest_now(app, owner.tenant_id, str(job_id))
        text = await asyncio.wait_for(stream, timeout=30)
        events = re.findall(r"^event: (\w+)$", text, re.M)
        assert events[-1] == "idle"
        assert "sources" in events
        # Nothing busy any more: the page no longer listens.
        page = (await c.get(f"{base}/knowledge")).text
        assert "sse-connect" not in page
        assert "ready, 1 passage<" in page
    async with await console_client(app, "10.200.0.18") as c:
        await sign_in(c, other)
        assert (await c.get(f"{base}/knowledge/events")).status_code == 404


async def test_the_widget_preview_is_the_real_widget_with_the_typed_theme(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    bot = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots",
        json={"name": "Previewed", "greeting": "Bonjour!"},
        headers=owner.headers,
    )
    made = await client.post(
        f"/v1/tenants/{owner.tenant_id}/channels",
        json={
            "type": "widget",
            "bot_id": bot.json()["id"],
            "allowed_origins": ["https://shop.example.com"],
            "theme": {"color": "#112233"},
        },
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    page_url = f"/console/w/{owner.tenant_id}/channels/{made.json()['id']}"
    other = await register(client, "console-preview-other")
    async with await console_client(app, "10.200.0.19") as c:
        await sign_in(c, owner)
        page = await c.get(page_url)
        assert (
            '<iframe id="widget-preview" title="Widget preview" sandbox="allow-scripts"'
            in page.text
        )
        assert "frame-src 'self'" in page.headers["content-security-policy"]
        saved = await c.get(f"{page_url}/preview")
        assert saved.status_code == 200
        assert '/widget/v1/parley.js" data-widget-key="preview"' in saved.text
        assert "&#34;color&#34;:&#34;#112233&#34;" in saved.text  # the saved theme
        assert "&#34;greeting&#34;:&#34;Bonjour!&#34;" in saved.text  # the bot's own
        csp = saved.headers["content-security-policy"]
        assert "connect-src 'none'" in csp  # the preview never reaches the API
        assert "frame-ancestors 'self'" in csp
        assert saved.headers["x-frame-options"] == "SAMEORIGIN"
        typed = await c.get(
            f"{page_url}/preview",
            params={
                "theme.color": "#aa0000",
                "theme.position": "left",
                "theme.title": '<img src=x onerror="window.__xss=1">',
                "theme.greeting": "Hello from the form",
            },
        )
        assert "&#34;color&#34;:&#34;#aa0000&#34;" in typed.text
        assert "&#34;position&#34;:&#34;left&#34;" in typed.text
        assert "Hello from the form" in typed.text
        assert "<img" not in typed.text  # only ever inside an escaped attribute
        # A colour that would not save is not previewed either: the saved one stays.
        bad = await c.get(f"{page_url}/preview", params={"theme.color": "red"})
        assert "&#34;color&#34;:&#34;#112233&#34;" in bad.text
    async with await console_client(app, "10.200.0.20") as c:
        await sign_in(c, other)
        theirs = f"/console/w/{other.tenant_id}/channels/{made.json()['id']}/preview"
        assert (await c.get(theirs)).status_code == 404


async def test_the_inbox_list_filters_by_tag_channel_and_flags_and_keeps_them(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    from tests.conftest import create_widget
    from tests.conversations.factories import create_conversation

    w = await create_widget(client, owner)
    tagged = await create_conversation(
        app.state.runtime.db, owner.tenant_id, w.channel_id, w.bot_id
    )
    plain = await create_conversation(app.state.runtime.db, owner.tenant_id, w.channel_id, w.bot_id)
    base = f"/console/w/{owner.tenant_id}/inbox"
    async with await console_client(app, "10.200.0.21") as c:
        await sign_in(c, owner)
        done = await post(c, f"{base}?c={tagged}", f"{base}/{tagged}/tag", {"tag": "billing"})
        assert done.status_code == 200
        everything = (await c.get(f"{base}?tab=all")).text
        assert f"c={tagged}" in everything
        assert f"c={plain}" in everything
        only = (await c.get(f"{base}?tab=all&tag=billing")).text
        assert f"c={tagged}" in only
        assert f"c={plain}" not in only
        assert "Filter (1 on)" in only
        # The filter rides along on the tabs, the conversation links and the live refresh.
        assert f"{base}?tab=waiting&amp;tag=billing" in only
        assert f"c={tagged}&amp;tag=billing" in only
        telegram = (await c.get(f"{base}?tab=all&channel=telegram")).text
        assert f"c={tagged}" not in telegram
        assert f"c={plain}" not in telegram
        assert f"c={plain}" in (await c.get(f"{base}?tab=all&channel=widget")).text
        # What the API would refuse is dropped, not an error: the whole tab shows.
        hostile = await c.get(f"{base}", params={"tab": "all", "tag": "a/b", "channel": "<x>"})
        assert hostile.status_code == 200
        assert f"c={plain}" in hostile.text
        assert "Filter (" not in hostile.text


def test_counts_agree_with_their_nouns() -> None:
    assert counted(1, "passage") == "1 passage"
    assert counted(0, "passage") == "0 passages"
    assert counted(3, "attempt") == "3 attempts"
    assert counted(2, "reply", "replies") == "2 replies"


async def test_an_api_key_form_sent_back_keeps_the_chosen_scopes(app: Any, owner: Account) -> None:
    base = f"/console/w/{owner.tenant_id}"
    async with await console_client(app, "10.200.0.27") as c:
        await sign_in(c, owner)
        page = (await c.get(f"{base}/api-keys")).text
        assert "read conversations, the live inbox stream and analytics" in page
        refused = await post(
            c, f"{base}/api-keys", f"{base}/api-keys", {"name": "", "scopes[]": "chat"}
        )
        assert refused.status_code == 422
        assert 'value="chat" checked' in refused.text
        assert 'value="admin" checked' not in refused.text


async def test_a_source_is_deleted_from_its_page_after_a_second_click(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    """Delete is on the source's page, behind a summary that says what it does; the source
    then leaves the list and the search, and another workspace cannot delete it."""
    base = f"/console/w/{owner.tenant_id}"
    other = await register(client, "other-delete")
    async with await console_client(app, "10.200.0.28") as c:
        await sign_in(c, owner)
        added = await post(
            c,
            f"{base}/knowledge",
            f"{base}/knowledge/add/text",
            {"title": "Returns", "text": "Bikes can be returned within 30 days."},
        )
        assert added.status_code == 303
        listing = (await c.get(f"{base}/knowledge")).text
        found = re.search(rf'href="({base}/knowledge/sources/[0-9a-f-]+)"', listing)
        assert found is not None
        source_url = found.group(1)
        page = (await c.get(source_url)).text
        assert "<summary>Delete this source…</summary>" in page
        assert "bots stop answering from it" in page
        delete_url = f"{source_url}/delete"
        assert f'action="{delete_url}"' in page
    async with await console_client(app, "10.200.0.29") as c:
        await sign_in(c, other)
        stranger = await c.get(f"/console/w/{other.tenant_id}/knowledge")
        refused = await c.post(delete_url, data={"csrf_token": csrf_of(stranger.text)})
        assert refused.status_code == 404
    async with await console_client(app, "10.200.0.28") as c:
        await sign_in(c, owner)
        fresh = (await c.get(source_url)).text
        deleted = await c.post(delete_url, data={"csrf_token": csrf_of(fresh)})
        assert deleted.status_code == 303
        assert deleted.headers["location"] == f"{base}/knowledge"
        assert "Returns" not in (await c.get(f"{base}/knowledge")).text
    listed = await client.get(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources", headers=owner.headers
    )
    assert [s["title"] for s in listed.json()["items"]] == []
