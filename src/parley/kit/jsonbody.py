"""JSON request bodies that cannot hurt: a nesting-depth limit and no non-finite numbers.

Python's `json` accepts `NaN`, `Infinity` and `1e400` (which becomes `inf`), and recursion in
its scanner turns JSON nested thousands of levels deep into a `RecursionError` (a 500). Every
JSON body the API parses goes through `loads` (the middleware below for FastAPI routes, the
channel parsers for ingress), so these are refused as bad input where they are parsed.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException

from parley.kit.limits import send_problem

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class UnsafeJson(json.JSONDecodeError):
    """A JSON text that parses but is refused (too deep, non-finite number): a ValueError,
    and the JSONDecodeError FastAPI turns into `422 validation_failed`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)


def _depth(body: bytes) -> int:
    if body.count(b"[") + body.count(b"{") <= 1:
        return 1
    deepest = depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJson(f"number out of range: {text[:20]}")
    return value


def _no_constant(text: str) -> Any:
    raise UnsafeJson(f"non-finite number: {text}")


def _bounded_int(text: str) -> int:
    if len(text) > 100:  # far beyond any id or count; int() of 4,300+ digits raises anyway
        raise UnsafeJson("integer too long")
    return int(text)


def check(body: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Raise `UnsafeJson` when the text nests deeper than `max_depth` (counted without
    parsing, so a hostile text costs one regex pass)."""
    raw = body.encode() if isinstance(body, str) else body
    if raw.count(b"[") + raw.count(b"{") > max_depth and _depth(raw) > max_depth:
        raise UnsafeJson(f"nested deeper than {max_depth} levels")


def loads(body: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """`json.loads` that refuses deep nesting, NaN/Infinity and out-of-range numbers."""
    check(body, max_depth)
    return json.loads(
        body, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant
    )


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind = bytes(value).split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return str(scope["method"]) in ("POST", "PUT", "PATCH")  # FastAPI parses these as JSON too


class JsonBodyGuard:
    """Read a JSON body, refuse it with `422 invalid_json` when `loads` would, and hand the
    same bytes on. Bodies of other types (file uploads) pass through untouched."""

    def __init__(self, app: ASGIApp, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def _problem(self, scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
        await send_problem(
            scope,
            send,
            status=status,
            code=code,
            title="The request body is not acceptable JSON"
            if status == 422
            else "The request body could not be read",
            detail=detail,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client left before sending its body
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except HTTPException as exc:  # the size limit or the read timeout, raised in receive
            await self._problem(
                scope,
                send,
                exc.status_code,
                "payload_too_large" if exc.status_code == 413 else "request_timeout",
                str(exc.detail),
            )
            return
        body = b"".join(chunks)
        if body:
            try:
                check(body, self.max_depth)
                json.loads(
                    body,
                    parse_float=_finite_float,
                    parse_int=_bounded_int,
                    parse_constant=_no_constant,
                )
            except UnsafeJson as exc:
                await self._problem(scope, send, 422, "invalid_json", exc.msg)
                return
            except (ValueError, RecursionError):
                pass  # plain malformed JSON: FastAPI reports it with the field location
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
