"""Register, login, refresh rotation and reuse detection, logout, /v1/me."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import assert_problem, register, unique_email


async def test_register_returns_the_contract_shape(client: httpx.AsyncClient) -> None:
    email = unique_email()
    resp = await client.post(
        "/v1/auth/register",
        json={"email": email, "password": "a long passphrase 42", "tenant_name": "Acme Inc."},
    )
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) >= {"user", "tenant", "access_token", "refresh_token", "token_type"}
    assert body["token_type"] == "bearer"
    assert body["user"]["email"] == email
    assert set(body["user"]) >= {"id", "email"}
    assert body["tenant"]["name"] == "Acme Inc."
    assert body["tenant"]["slug"].startswith("acme-inc")
    assert "password" not in resp.text


async def test_register_twice_with_same_email_is_a_conflict(client: httpx.AsyncClient) -> None:
    acct = await register(client)
    resp = await client.post(
        "/v1/auth/register",
        json={"email": acct.email.upper(), "password": "another passphrase", "tenant_name": "X"},
    )
    assert_problem(resp, 409, "email_taken")


async def test_concurrent_registrations_with_one_email_create_one_user(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email("race")
    body = {"email": email, "password": "a long passphrase 42", "tenant_name": "Race"}
    results = await asyncio.gather(*(client.post("/v1/auth/register", json=body) for _ in range(5)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 409, 409, 409, 409]


async def test_weak_and_invalid_registrations_are_refused(client: httpx.AsyncClient) -> None:
    short = await client.post(
        "/v1/auth/register",
        json={"email": unique_email(), "password": "short", "tenant_name": "X"},
    )
    assert_problem(short, 422, "weak_password")
    bad = await client.post(
        "/v1/auth/register", json={"email": "not-an-email", "password": "x" * 20}
    )
    body = assert_problem(bad, 422, "validation_failed")
    fields = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "email") in fields
    assert ("body", "tenant_name") in fields
    extra = await client.post(
        "/v1/auth/register",
        json={
            "email": unique_email(),
            "password": "a long passphrase 42",
            "tenant_name": "X",
            "is_platform_admin": True,
        },
    )
    assert_problem(extra, 422, "validation_failed")


async def test_login_and_me(client: httpx.AsyncClient) -> None:
    acct = await register(client)
    resp = await client.post(
        "/v1/auth/login", json={"email": acct.email, "password": acct.password}
    )
    assert resp.status_code == 200
    tokens = resp.json()
    assert set(tokens) >= {"access_token", "refresh_token", "token_type"}
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == acct.email
    assert body["is_platform_admin"] is False
    assert [(m["tenant"]["id"], m["role"]) for m in body["memberships"]] == [
        (acct.tenant_id, "owner")
    ]


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    acct = await register(client)
    wrong = await client.post(
        "/v1/auth/login", json={"email": acct.email, "password": "not the password"}
    )
    unknown = await client.post(
        "/v1/auth/login", json={"email": unique_email(), "password": "not the password"}
    )
    a = assert_problem(wrong, 401, "invalid_credentials")
    b = assert_problem(unknown, 401, "invalid_credentials")
    assert a["detail"] == b["detail"]


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    acct = await register(client)
    first = await client.post("/v1/auth/refresh", json={"refresh_token": acct.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != acct.refresh_token
    # The rotated-out token comes back: theft assumed, the whole family is revoked.
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": acct.refresh_token})
    assert_problem(reuse, 401, "refresh_token_reused")
    after = await client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert_problem(after, 401, "invalid_token")
    # Access tokens of the revoked session stop working too.
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert_problem(me, 401, "invalid_token")


async def test_concurrent_refresh_with_one_token_succeeds_once(client: httpx.AsyncClient) -> None:
    acct = await register(client)
    results = await asyncio.gather(
        *(
            client.post("/v1/auth/refresh", json={"refresh_token": acct.refresh_token})
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 401, 401, 401]


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    acct = await register(client)
    out = await client.post("/v1/auth/logout", headers=acct.headers)
    assert out.status_code == 204
    assert_problem(await client.get("/v1/me", headers=acct.headers), 401, "invalid_token")
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": acct.refresh_token})
    assert_problem(refresh, 401)


async def test_logout_of_one_session_keeps_the_other(client: httpx.AsyncClient) -> None:
    acct = await register(client)
    other = (
        await client.post("/v1/auth/login", json={"email": acct.email, "password": acct.password})
    ).json()
    await client.post("/v1/auth/logout", headers=acct.headers)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {other['access_token']}"})
    assert me.status_code == 200


async def test_unauthenticated_requests_get_401_problem(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/me")
    body = assert_problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.headers["X-Request-ID"] == body["trace_id"]
