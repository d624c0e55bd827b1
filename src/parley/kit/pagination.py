"""Cursor pagination: `{"items": […], "next_cursor": str | null}` on every list.

Cursors are opaque (url-safe base64 of the last item's sort key); clients pass them back as
`?cursor=`. Keyset pagination keeps pages stable while rows are inserted, unlike offsets.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from parley.kit.errors import Unprocessable

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class InvalidCursor(Unprocessable):
    code = "invalid_cursor"
    title = "The cursor is invalid"


def encode_cursor(key: list[Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(value, list):
        raise InvalidCursor()
    return value


def after_id(cursor: str | None) -> uuid.UUID | None:
    """The id a `next_cursor` made by `page_by_id` points after."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        return uuid.UUID(str(key[0]))
    except (ValueError, IndexError) as exc:
        raise InvalidCursor() from exc


R = TypeVar("R")


def after_int(cursor: str | None) -> int | None:
    """The integer key (a sequence number, an ordinal) a `next_cursor` made by `page_by_key`
    points after."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    if not key or not isinstance(key[0], int) or isinstance(key[0], bool):
        raise InvalidCursor()
    return key[0]


def page_by_key(
    rows: Sequence[R], limit: int, to_item: Callable[[R], T], key_of: Callable[[T], str | int]
) -> Page[T]:
    """A page from `limit + 1` rows fetched in key order (the extra row says there is more);
    the cursor holds the last item's key."""
    items = [to_item(r) for r in rows[:limit]]
    nxt = encode_cursor([key_of(items[-1])]) if len(rows) > limit and items else None
    return Page[T](items=items, next_cursor=nxt)


def page_by_id(
    rows: Sequence[R], limit: int, to_item: Callable[[R], T], id_of: Callable[[T], uuid.UUID]
) -> Page[T]:
    """`page_by_key` keyed by id (read back with `after_id`)."""
    return page_by_key(rows, limit, to_item, lambda item: str(id_of(item)))
