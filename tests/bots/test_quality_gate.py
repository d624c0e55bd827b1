"""The quality gate on publish: golden questions run against the draft and the published
version; a draft that drops one is blocked (or published with a warning), and the same draft
goes through once the question passes. The verdict is kept on the version and in its diff."""

from __future__ import annotations

from typing import Any

import httpx

from tests.analytics.factories import failed_question
from tests.conftest import Account, add_member, assert_problem, create_widget, ingest_now, register

REFUNDS = "Refunds take up to 14 days to be paid back, counted from when the return arrives."


async def _source(client: httpx.AsyncClient, app: Any, owner: Account, body: dict[str, Any]) -> str:
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources", json=body, headers=owner.headers
    )
    assert resp.status_code == 202, resp.text
    await ingest_now(app, owner.tenant_id, resp.json()["job"]["id"])
    return str(resp.json()["id"])


async def _setup(client: httpx.AsyncClient, app: Any, tag: str) -> dict[str, Any]:
    """A bot grounded on all sources (returns policy + a help-centre FAQ), two golden
    questions it passes, and a draft that keeps only the FAQ (so it loses the refund answer)."""
    owner = await register(client, tag)
    w = await create_widget(client, owner)
    await _source(client, app, owner, {"type": "text", "title": "Returns policy", "text": REFUNDS})
    faq = await _source(
        client,
        app,
        owner,
        {
            "type": "faq",
            "title": "Help centre",
            "pairs": [
                {
                    "question": "When do orders ship?",
                    "answer": "Orders ship within two business days.",
                }
            ],
        },
    )
    base = f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}"
    refund_q = await client.post(
        f"{base}/golden-questions",
        json={
            "question": "How long do refunds take?",
            "expected_answer": "14 days",
            "expected_passage": "take up to  14 DAYS",
        },
        headers=owner.headers,
    )
    assert refund_q.status_code == 201, refund_q.text
    ship_q = await client.post(
        f"{base}/golden-questions",
        json={"question": "When do orders ship?", "expected_source_id": faq},
        headers=owner.headers,
    )
    assert ship_q.status_code == 201, ship_q.text
    draft = await client.post(
        f"{base}/versions", json={"knowledge_source_ids": [faq]}, headers=owner.headers
    )
    assert draft.status_code == 201, draft.text
    published = (await client.get(base, headers=owner.headers)).json()["version_id"]
    return {
        "owner": owner,
        "widget": w,
        "base": base,
        "faq": faq,
        "refund_q": refund_q.json()["id"],
        "ship_q": ship_q.json()["id"],
        "draft": draft.json()["id"],
        "published": published,
    }


async def test_block_refuses_a_draft_that_drops_a_golden_question_until_it_passes(
    app: Any, client: httpx.AsyncClient
) -> None:
    s = await _setup(client, app, "gate-block")
    owner, base = s["owner"], s["base"]
    mode = await client.put(f"{base}/quality-gate", json={"mode": "block"}, headers=owner.headers)
    assert mode.json() == {"mode": "block", "golden_questions": 2}
    shortcut = await client.patch(base, json={"instructions": "Be brief."}, headers=owner.headers)
    assert_problem(shortcut, 409, "quality_gate_requires_draft")  # no way around the gate

    refused = await client.post(f"{base}/versions/{s['draft']}/publish", headers=owner.headers)
    body = assert_problem(refused, 409, "quality_gate_failed")
    assert (body["draft"]["passed"], body["draft"]["total"], body["draft"]["pass_rate"]) == (
        1,
        2,
        0.5,
    )
    assert (body["published"]["passed"], body["published"]["pass_rate"]) == (2, 1.0)
    assert body["published"]["version_id"] == s["published"]
    assert [f["question_id"] for f in body["draft"]["failing"]] == [s["refund_q"]]
    assert set(body["draft"]["failing"][0]["failed_checks"]) == {"answer", "passage"}
    assert body["regressions"] == [s["refund_q"]]
    assert "1 of 2" in body["detail"]
    bot = (await client.get(base, headers=owner.headers)).json()
    assert (bot["version"], bot["version_id"]) == (1, s["published"])  # nothing was published
    still = await client.get(f"{base}/versions/{s['draft']}", headers=owner.headers)
    assert still.json()["status"] == "draft"

    # The gap gets answered in the FAQ the draft keeps: the same draft now passes.
    gap = await failed_question(
        app.state.runtime.db,
        owner.tenant_id,
        s["widget"].bot_id,
        s["widget"].channel_id,
        "How long do refunds take?",
    )
    answer = await client.post(
        f"/v1/tenants/{owner.tenant_id}/analytics/gaps/{gap}/answer",
        json={"bot_id": s["widget"].bot_id, "source_id": s["faq"], "answer": REFUNDS},
        headers=owner.headers,
    )
    assert answer.status_code == 201, answer.text
    await ingest_now(app, owner.tenant_id, answer.json()["job_id"])

    done = await client.post(f"{base}/versions/{s['draft']}/publish", headers=owner.headers)
    assert done.status_code == 200, done.text
    gate = done.json()["quality_gate"]
    assert (gate["outcome"], gate["mode"]) == ("passed", "block")
    assert (gate["draft"]["passed"], gate["published"]["passed"]) == (2, 2)
    assert gate["draft"]["failing"] == []
    assert gate["regressions"] == []
    bot = (await client.get(base, headers=owner.headers)).json()
    assert (bot["version"], bot["version_id"]) == (2, s["draft"])

    # The verdict is part of the version's record and of its diff.
    kept = (await client.get(f"{base}/versions/{s['draft']}", headers=owner.headers)).json()
    assert kept["quality_gate"]["outcome"] == "passed"
    diff = await client.get(
        f"{base}/versions/{s['draft']}/diff",
        params={"against": s["published"]},
        headers=owner.headers,
    )
    assert diff.json()["quality_gate"]["draft"]["pass_rate"] == 1.0
    assert diff.json()["against_quality_gate"] is None  # v1 was published without a gate
    assert [c["field"] for c in diff.json()["changes"]] == ["knowledge_source_ids"]


async def test_warn_publishes_and_reports_the_drop_rollback_is_not_gated(
    app: Any, client: httpx.AsyncClient
) -> None:
    s = await _setup(client, app, "gate-warn")
    owner, base = s["owner"], s["base"]
    assert (await client.get(f"{base}/quality-gate", headers=owner.headers)).json()["mode"] == (
        "warn"
    )  # the default

    done = await client.post(f"{base}/versions/{s['draft']}/publish", headers=owner.headers)
    assert done.status_code == 200, done.text
    gate = done.json()["quality_gate"]
    assert (gate["outcome"], gate["mode"]) == ("warned", "warn")
    assert (gate["draft"]["pass_rate"], gate["published"]["pass_rate"]) == (0.5, 1.0)
    assert gate["regressions"] == [s["refund_q"]]
    assert (await client.get(base, headers=owner.headers)).json()["version"] == 2
    diff = await client.get(
        f"{base}/versions/{s['draft']}/diff",
        params={"against": s["published"]},
        headers=owner.headers,
    )
    assert diff.json()["quality_gate"]["outcome"] == "warned"

    # Rolling back to v1 is never held by the gate, even in block mode.
    await client.put(f"{base}/quality-gate", json={"mode": "block"}, headers=owner.headers)
    back = await client.post(f"{base}/versions/{s['published']}/publish", headers=owner.headers)
    assert back.status_code == 200, back.text
    assert back.json()["quality_gate"] is None
    assert (await client.get(base, headers=owner.headers)).json()["version"] == 1


async def test_golden_questions_crud_validation_roles_and_tenants(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client, "golden")
    w = await create_widget(client, owner)
    base = f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}"
    nothing = await client.post(
        f"{base}/golden-questions", json={"question": "Hours?"}, headers=owner.headers
    )
    assert_problem(nothing, 422)
    unknown = await client.post(
        f"{base}/golden-questions",
        json={"question": "Hours?", "expected_source_id": w.bot_id},
        headers=owner.headers,
    )
    assert_problem(unknown, 422, "unknown_knowledge_source")
    made = await client.post(
        f"{base}/golden-questions",
        json={"question": " Hours? ", "expected_answer": "9 to 5"},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    q = made.json()
    assert (q["question"], q["expected_answer"], q["expected_source_id"]) == (
        "Hours?",
        "9 to 5",
        None,
    )
    one = f"{base}/golden-questions/{q['id']}"
    emptied = await client.patch(one, json={"expected_answer": None}, headers=owner.headers)
    assert_problem(emptied, 409, "golden_question_expects_nothing")
    edited = await client.patch(one, json={"expected_passage": "Open 9"}, headers=owner.headers)
    assert edited.json()["expected_passage"] == "Open 9"
    listed = await client.get(f"{base}/golden-questions", headers=owner.headers)
    assert [i["id"] for i in listed.json()["items"]] == [q["id"]]

    viewer = await add_member(client, owner, "viewer")
    assert (await client.get(one, headers=viewer.headers)).status_code == 200
    assert_problem(
        await client.post(
            f"{base}/golden-questions",
            json={"question": "x", "expected_answer": "y"},
            headers=viewer.headers,
        ),
        403,
    )
    assert_problem(
        await client.put(f"{base}/quality-gate", json={"mode": "block"}, headers=viewer.headers),
        403,
    )

    other = await register(client, "golden-other")
    theirs = f"/v1/tenants/{other.tenant_id}/bots/{w.bot_id}"
    assert_problem(await client.get(f"{theirs}/golden-questions", headers=other.headers), 404)
    assert_problem(
        await client.get(f"{theirs}/golden-questions/{q['id']}", headers=other.headers), 404
    )
    other_w = await create_widget(client, other)
    assert_problem(
        await client.get(
            f"/v1/tenants/{other.tenant_id}/bots/{other_w.bot_id}/golden-questions/{q['id']}",
            headers=other.headers,
        ),
        404,
        "golden_question_not_found",
    )

    assert (await client.delete(one, headers=owner.headers)).status_code == 204
    assert_problem(await client.get(one, headers=owner.headers), 404, "golden_question_not_found")
