"""Time-ordered ids (UUIDv7): index-friendly, and their order is creation order."""

from __future__ import annotations

import uuid
from datetime import datetime

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    return uuid7()


def id_floor(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of the millisecond `at`: every id made at or after `at` sorts at or
    above it (PostgreSQL compares uuids byte by byte, and a v7 id starts with its Unix time in
    milliseconds), so `id >= id_floor(t)` bounds a scan on a `(tenant_id, id)` key by time."""
    millis = max(0, int(at.timestamp() * 1000))
    return uuid.UUID(bytes=millis.to_bytes(6, "big") + bytes(10))
