"""Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id`,
`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`.

Used both ways: to verify what a webhook channel receives and to sign what it sends back.
The key is `whsec_` + base64 of 24 random bytes; several space-separated signatures are
accepted (the sender may be rotating keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

TOLERANCE_SECONDS = 300  # five minutes either way
PREFIX = "whsec_"


class SignatureError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_key() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def key_bytes(secret: str) -> bytes:
    raw = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(
    secret: str,
    msg_id: str,
    body: bytes,
    timestamp: int | None = None,
    *,
    also: Sequence[str] = (),
) -> dict[str, str]:
    """The three Standard Webhooks headers; `also` adds a signature per extra secret
    (space-separated, as the standard allows), so a receiver still holding the previous
    secret verifies during a rotation."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": " ".join(sign(k, msg_id, ts, body) for k in (secret, *also)),
    }


def check_timestamp(raw: str | None, now: float | None = None) -> int:
    """The timestamp as an int if it is within the tolerance of `now`; raises otherwise.
    Checked before any database work, so stale replays cost nothing."""
    if not raw or not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise SignatureError("missing_or_malformed_timestamp")
    ts = int(raw)
    current = int(time.time() if now is None else now)  # whole seconds, as the header is
    if abs(current - ts) > TOLERANCE_SECONDS:
        raise SignatureError("timestamp_outside_tolerance")
    return ts


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, signature_header: str) -> None:
    """Raise unless one of the `v1,` signatures matches (constant-time comparison)."""
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1].encode()
    for candidate in signature_header.split(" ")[:10]:
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise SignatureError("no_matching_signature")
