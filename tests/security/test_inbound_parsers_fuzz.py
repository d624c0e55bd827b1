"""Issue 15: a Hypothesis suite for the inbound parsers (webhook channel body, Telegram
update, Standard Webhooks signature headers). Whatever arrives, the parser either accepts it
or refuses it as the client's fault (a 4xx problem); it never raises anything else, and over
HTTP nothing answers 5xx."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.channels import signatures, telegram
from parley.channels.ingress import InvalidEvent, _parse_webhook
from parley.kit.errors import ParleyError

FUZZ = settings(max_examples=300, deadline=None)
HTTP_FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# JSON-ish values, including what Python's json would accept but we refuse: NaN, Infinity,
# huge numbers, deep nesting, odd text.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
keys_of_interest = st.sampled_from(
    ["update_id", "message", "chat", "id", "text", "external_user_id", "edited_message", "from"]
)
update_like = st.dictionaries(keys_of_interest, values, max_size=6)


def _dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _nested(depth: int, inner: str) -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    values.map(_dump),
    update_like.map(_dump),
    st.builds(
        _nested, st.integers(min_value=0, max_value=20_000), st.sampled_from(["", "1", "{}"])
    ),
    st.sampled_from([b"NaN", b"1e400", b'{"update_id": 1e400}', b'{"text": "\\ud800"}']),
)


@FUZZ
@given(bodies)
def test_webhook_channel_body_parser_refuses_cleanly(body: bytes) -> None:
    with contextlib.suppress(InvalidEvent):
        _parse_webhook(body)


@FUZZ
@given(bodies)
def test_telegram_update_parser_refuses_cleanly(body: bytes) -> None:
    update = telegram.parse_update(body)
    assert update is None or isinstance(update, telegram.Update)


header_text = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
    st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=12),
)


@FUZZ
@given(header_text, st.text(max_size=40), st.text(max_size=200), st.binary(max_size=100))
def test_signature_headers_refuse_cleanly(
    timestamp: str, msg_id: str, signature: str, body: bytes
) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    with contextlib.suppress(signatures.SignatureError):
        ts = signatures.check_timestamp(timestamp)
        signatures.verify(secret, msg_id, ts, body, signature)


@HTTP_FUZZ
@given(
    body=bodies,
    timestamp=header_text,
    kind=st.sampled_from(["telegram", "webhook"]),
)
async def test_inbound_routes_never_answer_5xx(
    client: httpx.AsyncClient, body: bytes, timestamp: str, kind: str
) -> None:
    stamp = timestamp.encode("utf-8", "replace").replace(b"\r", b"").replace(b"\n", b"")
    headers: dict[str, Any] = {
        "Content-Type": "application/json",
        "webhook-id": "msg_x",
        "webhook-timestamp": stamp,  # bytes: non-ASCII digits reach the server as UTF-8
        "webhook-signature": "v1,AAAA",
        "X-Telegram-Bot-Api-Secret-Token": "x",
    }
    resp = await client.post(f"/v1/channels/{uuid.uuid4()}/{kind}", content=body, headers=headers)
    assert resp.status_code < 500, resp.text


def test_refusals_are_client_errors() -> None:
    """The parsers' refusals render as 4xx problems."""
    assert issubclass(InvalidEvent, ParleyError)
    assert 400 <= InvalidEvent.status < 500
