"""Time-ordered ids (UUIDv7): index-friendly, and their order is creation order."""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    return uuid7()
