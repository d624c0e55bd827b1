"""Idempotency keys: same key + same body → the stored result; same key + another body → 422;
while the first request still runs → wait for it, or 409.

This module holds what every caller shares and that needs no table: the key's hash, its
operation id, the lease lengths and the two errors. The ledger rows themselves are the
conversations package's (`parley.conversations.idempotency_keys`, and step 1 of the SQL send
function `parley_chat_send`): `kit` imports no model and no feature package.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from parley.kit.db import TenantId
from parley.kit.errors import Conflict, Unprocessable

RETENTION = timedelta(hours=24)
LEASE = timedelta(seconds=120)
ASYNC_LEASE = timedelta(minutes=15)
"""An asynchronous send's claim outlives its queue wait and the job's retries: a client retry
meanwhile is answered from the claim (202) instead of enqueuing the turn a second time."""
_NAMESPACE = uuid.UUID("6f1c2b8e-2f0a-4c55-9b0e-3f5b5d1e8a77")


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used with a different request"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    title = "A request with this Idempotency-Key is still being processed"


def request_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


def operation_id(tenant_id: TenantId, scope: str, key: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{tenant_id}:{scope}:{key}")
