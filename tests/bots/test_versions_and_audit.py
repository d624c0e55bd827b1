"""Bot versions (drafts, publish, rollback, diff) and the audit log (one entry per change,
append-only, tamper-evident)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests.conftest import (
    Account,
    assert_problem,
    create_widget,
    parse_sse,
    register,
    widget_session,
)
from tests.tenants.test_route_matrix import CASES, TENANT_PREFIX, World, tenant_routes


async def _audit_count(admin_conn: asyncpg.Connection, tenant_id: str) -> int:
    return int(
        await admin_conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE tenant_id = $1", uuid.UUID(tenant_id)
        )
    )


async def test_drafts_publish_rollback_and_diff(client: httpx.AsyncClient) -> None:
    owner = await register(client, "versions")
    w = await create_widget(
        client,
        owner,
        bot={"fallback_text": "Answer from v1.", "instructions": "Line one.\nLine two."},
    )
    base = f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}"
    v1 = (await client.get(base, headers=owner.headers)).json()
    assert v1["version"] == 1

    draft = await client.post(
        f"{base}/versions",
        json={"fallback_text": "Answer from v2.", "instructions": "Line one.\nLine 2!"},
        headers=owner.headers,
    )
    assert draft.status_code == 201
    d = draft.json()
    assert (d["number"], d["status"]) == (2, "draft")
    assert d["config"]["greeting"] == v1["config"]["greeting"]  # copied from the published one

    async def live_answer() -> str:
        s = await widget_session(client, w.widget_key)
        r = await client.post("/v1/widget/messages", json={"content": "q"}, headers=s.headers)
        return str(r.json()["reply"]["content"])

    assert await live_answer() == "Answer from v1."  # drafts are not live
    edited = await client.patch(
        f"{base}/versions/{d['id']}", json={"temperature": 0.7}, headers=owner.headers
    )
    assert edited.json()["config"]["temperature"] == 0.7

    published = await client.post(f"{base}/versions/{d['id']}/publish", headers=owner.headers)
    assert published.json()["status"] == "published"
    assert await live_answer() == "Answer from v2."
    # Published versions are immutable, and publishing twice is refused.
    assert_problem(
        await client.patch(
            f"{base}/versions/{d['id']}", json={"temperature": 1}, headers=owner.headers
        ),
        409,
        "version_not_draft",
    )
    assert_problem(
        await client.post(f"{base}/versions/{d['id']}/publish", headers=owner.headers), 409
    )

    # Rollback: publish version 1 again.
    back = await client.post(f"{base}/versions/{v1['version_id']}/publish", headers=owner.headers)
    assert back.json()["number"] == 1
    assert await live_answer() == "Answer from v1."
    listed = (await client.get(f"{base}/versions", headers=owner.headers)).json()["items"]
    assert [(v["number"], v["status"]) for v in listed] == [(1, "published"), (2, "archived")]

    diff = (
        await client.get(
            f"{base}/versions/{d['id']}/diff",
            params={"against": v1["version_id"]},
            headers=owner.headers,
        )
    ).json()
    changed = {c["field"]: (c["before"], c["after"]) for c in diff["changes"]}
    assert changed["fallback_text"] == ("Answer from v1.", "Answer from v2.")
    assert changed["temperature"] == (0.2, 0.7)
    assert "-Line two." in diff["instructions_diff"]
    assert "+Line 2!" in diff["instructions_diff"]
    assert " Line one." in diff["instructions_diff"]


async def test_the_provider_gets_the_published_instructions(
    client: httpx.AsyncClient, fake_openai: Any
) -> None:
    owner = await register(client, "sysprompt")
    w = await create_widget(
        client,
        owner,
        bot={"provider": "openai", "model": "fake-echo", "instructions": "You are v1."},
    )
    base = f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}"
    draft = (
        await client.post(
            f"{base}/versions", json={"instructions": "You are v2."}, headers=owner.headers
        )
    ).json()
    s = await widget_session(client, w.widget_key)

    async def system_for(marker: str) -> str:
        r = await client.post(
            "/v1/widget/messages",
            json={"content": marker},
            headers={**s.headers, "Accept": "text/event-stream"},
        )
        assert parse_sse(r.text)[-1][0] == "reply.completed"
        (call,) = fake_openai.calls_for(marker)
        return str(call["messages"][0]["content"])

    assert (await system_for(f"m-{uuid.uuid4().hex}")).startswith("You are v1.")
    await client.post(f"{base}/versions/{draft['id']}/publish", headers=owner.headers)
    assert (await system_for(f"m-{uuid.uuid4().hex}")).startswith("You are v2.")


async def test_every_configuration_route_writes_exactly_one_audit_entry(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    from tests.tenants.test_route_matrix import _send, add_member

    owner = await register(client, "audit")
    accounts = {"owner": owner}
    for role in ("admin", "editor", "viewer"):
        accounts[role] = await add_member(client, owner, role)
    other = await register(client, "audit-b")
    world = World(client=client, a=accounts, b_owner=other, b_key="")
    # Queries sent as POST change nothing; re-index and restore need a source a worker has
    # indexed, so tests/knowledge checks their audit entries.
    not_changes = {
        "/knowledge/search",
        "/knowledge/quality-check",
        "/knowledge/sources/{source_id}/reindex",
        "/knowledge/sources/{source_id}/restore",
        "/conversations/{conversation_id}/typing",  # a signal to the visitor, not stored
    }
    mutating = [
        (m, s)
        for m, s, _ in tenant_routes(app)
        if m in ("POST", "PATCH", "PUT", "DELETE")
        and not s.endswith("/chat")  # preview: no change
        and s not in not_changes
    ]
    assert len(mutating) >= 15
    for method, suffix in mutating:
        call = await CASES[(method, suffix)].make(world)
        before = await _audit_count(admin_conn, owner.tenant_id)
        resp = await _send(world, method, suffix, owner.tenant_id, call, owner.access_token)
        assert resp.status_code < 300, (method, suffix, resp.text)
        after = await _audit_count(admin_conn, owner.tenant_id)
        assert after - before == 1, (method, TENANT_PREFIX + suffix)
    log = (
        await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log?limit=5", headers=owner.headers)
    ).json()
    assert log["items"][0]["seq"] > log["items"][1]["seq"]
    assert log["items"][0]["actor"] == f"user:{owner.user_id}"
    assert log["next_cursor"]


async def test_audit_log_is_append_only_and_tamper_evident(
    client: httpx.AsyncClient, admin_conn: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "tamper")
    await create_widget(client, owner)
    for i in range(3):
        await client.patch(
            f"/v1/tenants/{owner.tenant_id}", json={"name": f"Name {i}"}, headers=owner.headers
        )
    verify = f"/v1/tenants/{owner.tenant_id}/audit-log/verify"
    assert (await client.get(verify, headers=owner.headers)).json() == {
        "intact": True,
        "broken_seqs": [],
    }

    async with app_conn.transaction():
        await app_conn.execute("SELECT set_config('app.tenant_id', $1, true)", owner.tenant_id)
        for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
            try:
                async with app_conn.transaction():
                    await app_conn.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                continue
            raise AssertionError(f"{statement} was allowed")

    rows = await admin_conn.fetch(
        "SELECT seq FROM audit_log WHERE tenant_id = $1 ORDER BY seq", uuid.UUID(owner.tenant_id)
    )
    seqs = [r["seq"] for r in rows]
    detected = 0
    for target in seqs:  # tamper with each row in turn (as the database owner), then restore
        tid = uuid.UUID(owner.tenant_id)
        original = await admin_conn.fetchval(
            "SELECT after::text FROM audit_log WHERE tenant_id = $1 AND seq = $2", tid, target
        )
        await admin_conn.execute(
            "UPDATE audit_log SET after = '{\"tampered\": true}' WHERE tenant_id = $1 AND seq = $2",
            tid,
            target,
        )
        result = (await client.get(verify, headers=owner.headers)).json()
        detected += target in result["broken_seqs"] and not result["intact"]
        await admin_conn.execute(
            "UPDATE audit_log SET after = $3::jsonb WHERE tenant_id = $1 AND seq = $2",
            tid,
            target,
            original,
        )
    assert detected == len(seqs)
    # Removing a row is detected too.
    await admin_conn.execute(
        "DELETE FROM audit_log WHERE tenant_id = $1 AND seq = $2",
        uuid.UUID(owner.tenant_id),
        seqs[1],
    )
    assert (await client.get(verify, headers=owner.headers)).json()["intact"] is False


async def test_viewers_cannot_read_the_audit_log(client: httpx.AsyncClient) -> None:
    from tests.conftest import add_member

    owner: Account = await register(client, "audit-viewer")
    viewer = await add_member(client, owner, "viewer")
    assert_problem(
        await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=viewer.headers), 403
    )


async def test_a_draft_can_be_tried_before_publishing(
    client: httpx.AsyncClient, fake_openai: Any
) -> None:
    owner = await register(client, "preview")
    w = await create_widget(client, owner, bot={"fallback_text": "Live answer."})
    base = f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}"
    draft = (
        await client.post(
            f"{base}/versions",
            json={"provider": "openai", "model": "fake-echo", "instructions": "You are the draft."},
            headers=owner.headers,
        )
    ).json()
    marker = f"preview-{uuid.uuid4().hex[:8]}"
    resp = await client.post(
        f"{base}/versions/{draft['id']}/chat",
        json={"content": marker, "history": [{"role": "user", "content": "earlier"}]},
        headers=owner.headers,
    )
    assert resp.status_code == 200
    assert resp.json()["reply"] == f"You said: {marker}"
    (call,) = fake_openai.calls_for(marker)
    assert call["messages"][0]["content"].startswith("You are the draft.")
    assert [m["content"] for m in call["messages"][1:]] == ["earlier", marker]
    # Live traffic still uses the published version, and nothing was stored.
    s = await widget_session(client, w.widget_key)
    live = await client.post("/v1/widget/messages", json={"content": "q"}, headers=s.headers)
    assert live.json()["reply"]["content"] == "Live answer."


async def test_retrieval_and_handoff_settings_are_versioned(client: httpx.AsyncClient) -> None:
    owner = await register(client, "settings")
    w = await create_widget(client, owner)
    base = f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}"
    v1 = (await client.get(base, headers=owner.headers)).json()
    assert v1["config"]["retrieval"] == {"top_k": 5, "min_score": 0.0}
    assert v1["config"]["handoff"]["on_no_answer"] is False
    draft = (
        await client.post(
            f"{base}/versions",
            json={"retrieval": {"top_k": 8, "min_score": 0.2}, "handoff": {"keywords": ["human"]}},
            headers=owner.headers,
        )
    ).json()
    diff = (
        await client.get(
            f"{base}/versions/{draft['id']}/diff",
            params={"against": v1["version_id"]},
            headers=owner.headers,
        )
    ).json()
    assert {c["field"] for c in diff["changes"]} == {"retrieval", "handoff"}
    bad = await client.post(
        f"{base}/versions", json={"retrieval": {"top_k": 0}}, headers=owner.headers
    )
    assert_problem(bad, 422, "validation_failed")


async def test_audit_log_pages_by_sequence_and_refuses_a_forged_cursor(
    client: httpx.AsyncClient,
) -> None:
    import base64
    import json

    owner = await register(client, "audit-pages")
    url = f"/v1/tenants/{owner.tenant_id}/audit-log"
    for i in range(3):  # three configuration changes, three entries
        made = await client.post(
            f"/v1/tenants/{owner.tenant_id}/bots", json={"name": f"Bot {i}"}, headers=owner.headers
        )
        assert made.status_code == 201, made.text
    first = (await client.get(url, params={"limit": 2}, headers=owner.headers)).json()
    second = (
        await client.get(
            url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=owner.headers
        )
    ).json()
    seqs = [e["seq"] for e in first["items"] + second["items"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == len(seqs) >= 3
    # A well-formed cursor holding something other than a sequence number: 422, not 500.
    forged = base64.urlsafe_b64encode(json.dumps(["x"]).encode()).decode().rstrip("=")
    bad = await client.get(url, params={"cursor": forged}, headers=owner.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["code"] == "invalid_cursor"
