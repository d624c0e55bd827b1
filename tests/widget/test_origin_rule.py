"""Which website is calling (docs/widget-api.md): a browser's same-origin GET carries no
`Origin`, so the widget API reads `Sec-Fetch-Site` (or, from browsers too old to send it, the
`Referer`) and takes the server's own origin; every cross-origin case stays refused."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ALLOWED_ORIGIN, assert_problem, create_widget, register, widget_session

OWN = "http://testserver"  # the ASGI client's base URL: the server's own origin here


@pytest.fixture
async def history_path(client: httpx.AsyncClient) -> tuple[str, str, str]:
    """A history URL and two tokens for it: one bound to the server's own origin (as on
    `/demo`), one bound to another allowed website."""
    owner = await register(client, "origin-rule")
    widget = await create_widget(client, owner, origins=[OWN, ALLOWED_ORIGIN])
    own = await widget_session(client, widget.widget_key, origin=OWN)
    other = await widget_session(client, widget.widget_key, origin=ALLOWED_ORIGIN)
    assert own.body["token"]
    return f"/v1/widget/conversations/{own.conversation_id}/messages", own.token, other.token


async def test_a_same_origin_get_without_origin_is_the_servers_own_origin(
    client: httpx.AsyncClient, history_path: tuple[str, str, str]
) -> None:
    path, own_token, _ = history_path
    bearer = {"Authorization": f"Bearer {own_token}"}
    resp = await client.get(path, headers={**bearer, "Sec-Fetch-Site": "same-origin"})
    assert resp.status_code == 200, resp.text
    assert "access-control-allow-origin" not in resp.headers  # same origin: no CORS needed
    # A browser without Sec-Fetch-* headers: the Referer of a page on this origin.
    resp = await client.get(path, headers={**bearer, "Referer": f"{OWN}/demo?x=1"})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no signal at all
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar, not a page's request
        # Sec-Fetch-Site present wins over a Referer that claims this origin.
        {"Sec-Fetch-Site": "cross-site", "Referer": f"{OWN}/demo"},
        {"Referer": "https://evil.example.com/page"},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "https://evil.example.com", "Sec-Fetch-Site": "same-origin"},
    ],
)
async def test_without_a_same_origin_signal_the_call_is_refused(
    client: httpx.AsyncClient, history_path: tuple[str, str, str], headers: dict[str, str]
) -> None:
    path, own_token, _ = history_path
    resp = await client.get(path, headers={"Authorization": f"Bearer {own_token}", **headers})
    assert_problem(resp, 403, "origin_not_allowed")


async def test_another_websites_token_is_not_usable_from_this_origin(
    client: httpx.AsyncClient, history_path: tuple[str, str, str]
) -> None:
    path, _, other_token = history_path
    bearer = {"Authorization": f"Bearer {other_token}"}
    resp = await client.get(path, headers={**bearer, "Sec-Fetch-Site": "same-origin"})
    assert_problem(resp, 403, "origin_not_allowed")
    # From its own website the origin passes (and the conversation, not this visitor's, is not).
    resp = await client.get(path, headers={**bearer, "Origin": ALLOWED_ORIGIN})
    assert_problem(resp, 404, "conversation_not_found")


async def test_a_session_from_a_same_origin_page_needs_the_origin_on_the_allowlist(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client, "origin-rule-2")
    widget = await create_widget(client, owner, origins=[ALLOWED_ORIGIN])
    resp = await client.post(
        "/v1/widget/session",
        json={"widget_key": widget.widget_key},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert_problem(resp, 403, "origin_not_allowed")
