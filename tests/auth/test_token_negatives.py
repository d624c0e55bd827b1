"""SPEC §4.4: malformed and hostile tokens × every authenticated route → 0 accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from parley.auth.access import ACCESS_AUDIENCE, ACCESS_TYPE
from parley.kit.security import Keyring, load_secret_keys
from parley.settings import Settings
from tests.conftest import Account, assert_problem, create_api_key, register
from tests.routes import access_of, api_routes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forge(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    alg = header.get("alg", "HS256")
    digestmod = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(
        alg, hashlib.sha256
    )
    sig = hmac.new(key, signing_input.encode(), digestmod).digest()
    return f"{signing_input}.{_b64(sig)}"


def _hostile_tokens(settings: Settings, victim: Account, revoked: Account) -> dict[str, str]:
    keys = load_secret_keys(settings.parley_secret_keys.get_secret_value(), settings.data_dir)  # type: ignore[union-attr]
    ring = Keyring.from_secrets(keys)
    real = ring.signing[0]
    now = int(time.time())
    good_claims = jwt.decode(
        victim.access_token, options={"verify_signature": False}, algorithms=["HS256"]
    )
    base = dict(good_claims)
    header = {"alg": "HS256", "kid": real.kid, "typ": "JWT"}

    def signed(
        payload: dict[str, Any], hdr: dict[str, Any] | None = None, key: bytes | None = real.key
    ) -> str:
        return _forge(hdr or header, payload, key)

    tokens: dict[str, str] = {
        "alg none": _forge({"alg": "none", "typ": "JWT"}, base, None),
        "alg None": _forge({"alg": "None", "kid": real.kid}, base, None),
        "alg none with sig": _forge({"alg": "none", "kid": real.kid}, base, real.key),
        "HS384 same key": signed(base, {"alg": "HS384", "kid": real.kid}),
        "HS512 same key": signed(base, {"alg": "HS512", "kid": real.kid}),
        "RS256 confusion": signed(base, {"alg": "RS256", "kid": real.kid}),
        "ES256 confusion": signed(base, {"alg": "ES256", "kid": real.kid}),
        "wrong key": signed(base, key=b"k" * 32),
        "empty key": signed(base, key=b""),
        "unknown kid": signed(base, {"alg": "HS256", "kid": "0" * 16}),
        "no kid": signed(base, {"alg": "HS256"}),
        "kid path traversal": signed(base, {"alg": "HS256", "kid": "../../secret_keys"}),
        "kid as number": signed(base, {"alg": "HS256", "kid": 1}),
        "jku header": signed(base, {**header, "jku": "https://evil.example/jwks.json"}),
        "jwk header": signed(base, {**header, "jwk": {"kty": "oct", "k": _b64(b"k" * 32)}}),
        "x5u header": signed(base, {**header, "x5u": "https://evil.example/cert"}),
        "crit header": signed(base, {**header, "crit": ["exp"]}),
        "expired by 1 s": signed({**base, "iat": now - 100, "nbf": now - 100, "exp": now - 1}),
        "expired long ago": signed({**base, "iat": 1000, "nbf": 1000, "exp": 2000}),
        "nbf in future": signed({**base, "nbf": now + 60}),
        "no exp": signed({k: v for k, v in base.items() if k != "exp"}),
        "no iat": signed({k: v for k, v in base.items() if k != "iat"}),
        "no nbf": signed({k: v for k, v in base.items() if k != "nbf"}),
        "no jti": signed({k: v for k, v in base.items() if k != "jti"}),
        "exp as string": signed({**base, "exp": str(now + 600)}),
        "wrong aud widget": signed({**base, "aud": "parley:widget"}),
        "aud list other": signed({**base, "aud": ["other"]}),
        "no aud": signed({k: v for k, v in base.items() if k != "aud"}),
        "wrong iss": signed({**base, "iss": "evil"}),
        "no iss": signed({k: v for k, v in base.items() if k != "iss"}),
        "typ refresh": signed({**base, "typ": "refresh"}),
        "typ widget": signed({**base, "typ": "widget"}),
        "no typ": signed({k: v for k, v in base.items() if k != "typ"}),
        "sub not uuid": signed({**base, "sub": "admin"}),
        "sub unknown user": signed({**base, "sub": str(uuid.uuid4())}),
        "no sub": signed({k: v for k, v in base.items() if k != "sub"}),
        "no sid": signed({k: v for k, v in base.items() if k != "sid"}),
        "sid not uuid": signed({**base, "sid": "x"}),
        "sid of another session": signed({**base, "sid": str(uuid.uuid4())}),
        "revoked session": revoked.access_token,
        "tampered payload": (
            victim.access_token.split(".")[0]
            + "."
            + _b64(json.dumps({**base, "sub": str(uuid.uuid4())}).encode())
            + "."
            + victim.access_token.split(".")[2]
        ),
        "flipped signature byte": victim.access_token[:-2]
        + ("A" if victim.access_token[-2] != "A" else "B")
        + victim.access_token[-1],
        "truncated": victim.access_token[:-10],
        "two segments": ".".join(victim.access_token.split(".")[:2]),
        "four segments": victim.access_token + ".x",
        "garbage": "not-a-token",
        "whitespace": "   ",
        "unicode": "тест.тест.тест",
        "huge": "a" * 8000,
        "refresh token as access": victim.refresh_token,
        "api key lookalike": "prl_",
        "api key no secret": "prl_abc_",
        "api key unknown prefix": "prl_000000000000_" + "x" * 43,
        "json payload": json.dumps(base),
    }
    return tokens


class _AnyId(dict[str, str]):
    """Path parameters for the sweep: a route added later with a new `{…_id}` gets a random id
    rather than breaking the sweep (a token refused is refused whatever the id)."""

    def __missing__(self, key: str) -> str:
        return str(uuid.uuid4())


def authenticated_routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for r in api_routes(app):
        if access_of(r.dependant) is not None:
            out.append((r.method, r.path))
    return out


@pytest.fixture
async def victim(client: httpx.AsyncClient) -> Account:
    return await register(client, "victim")


async def test_hostile_tokens_are_refused_everywhere(
    app: Any, client: httpx.AsyncClient, settings: Settings, victim: Account
) -> None:
    revoked = await register(client, "revoked")
    await client.post("/v1/auth/logout", headers=revoked.headers)
    tokens = _hostile_tokens(settings, victim, revoked)
    assert len(tokens) >= 50
    routes = authenticated_routes(app)
    assert len(routes) >= 15
    fill = {
        "tenant_id": victim.tenant_id,
        "user_id": victim.user_id,
        "invitation_id": str(uuid.uuid4()),
        "key_id": str(uuid.uuid4()),
        "token": "inv_x",
        "job_id": "1",
        "bot_id": str(uuid.uuid4()),
        "channel_id": str(uuid.uuid4()),
        "version_id": str(uuid.uuid4()),
        "provider": "openai",
        "source_id": str(uuid.uuid4()),
        "webhook_id": str(uuid.uuid4()),
        "delivery_id": str(uuid.uuid4()),
        "rule_id": str(uuid.uuid4()),
        "conversation_id": str(uuid.uuid4()),
        "note_id": str(uuid.uuid4()),
        "tag": "vip",
        "export_id": str(uuid.uuid4()),
        "gap_id": str(uuid.uuid4()),
        "question_id": str(uuid.uuid4()),
    }
    accepted = []
    for name, token in tokens.items():
        for method, path in routes:
            resp = await client.request(
                method,
                path.format_map(_AnyId(fill)),
                headers={"Authorization": b"Bearer " + token.encode()},
                json={},
            )
            if resp.status_code != 401:
                accepted.append((name, method, path, resp.status_code))
            else:
                assert_problem(resp, 401)
    assert accepted == []
    # The real token still works (the test can tell acceptance from refusal).
    ok = await client.get(f"/v1/tenants/{victim.tenant_id}", headers=victim.headers)
    assert ok.status_code == 200


async def test_every_token_we_issue_expires(victim: Account) -> None:
    claims = jwt.decode(victim.access_token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 3600
    header = jwt.get_unverified_header(victim.access_token)
    assert header["alg"] == "HS256"
    assert header["kid"]
    assert claims["aud"] == ACCESS_AUDIENCE
    assert claims["typ"] == ACCESS_TYPE


async def test_revoked_and_expired_api_keys_are_refused(
    client: httpx.AsyncClient, victim: Account, admin_conn: Any
) -> None:
    key = await create_api_key(client, victim, ["admin"])
    path = f"/v1/tenants/{victim.tenant_id}/members"
    auth = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get(path, headers=auth)).status_code == 200
    wrong_secret = key["key"][:-4] + "AAAA"
    assert_problem(await client.get(path, headers={"Authorization": f"Bearer {wrong_secret}"}), 401)
    await admin_conn.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(key["id"]),
    )
    assert_problem(await client.get(path, headers=auth), 401, "invalid_token")
    key2 = await create_api_key(client, victim, ["admin"])
    auth2 = {"Authorization": f"Bearer {key2['key']}"}
    assert (
        await client.delete(
            f"/v1/tenants/{victim.tenant_id}/api-keys/{key2['id']}", headers=victim.headers
        )
    ).status_code == 204
    assert_problem(await client.get(path, headers=auth2), 401, "invalid_token")


async def test_api_keys_never_work_on_user_routes(
    client: httpx.AsyncClient, victim: Account
) -> None:
    key = await create_api_key(client, victim, ["admin"])
    resp = await client.get("/v1/me", headers={"Authorization": f"Bearer {key['key']}"})
    assert_problem(resp, 401, "invalid_token")
