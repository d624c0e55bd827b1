"""The voice module is served like the rest of the widget and stays within its budget, while
the base widget (loader + chat UI) stays within its own (SPEC P1)."""

from __future__ import annotations

import httpx

from parley.widget.assets import weights


def test_budgets() -> None:
    w = weights()
    assert w["parley.js"] + w["ui.js"] <= 10_240
    assert w["voice.js"] <= 6_144


async def test_voice_module_is_served(client: httpx.AsyncClient) -> None:
    resp = await client.get("/widget/v1/voice.js", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/javascript")
    assert "/v1/widget/voice" in resp.text
    again = await client.get("/widget/v1/voice.js", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304
