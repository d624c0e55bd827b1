"""Domain errors and their RFC 9457 rendering.

Every error the API returns is `application/problem+json` with `type`, `title`, `status`,
`detail`, a stable machine `code` and the request's `trace_id`. Domain code raises a
`ParleyError` subclass; one handler renders them all, so no route formats errors by hand.
"""

from __future__ import annotations

import errno
import json
from typing import Any, ClassVar

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.kit.requestid import current_trace_id

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://parley.dev/problems/"


class InvalidField(BaseModel):
    loc: list[str | int]
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response of the API is shaped."""

    type: str = Field(examples=[TYPE_BASE + "not_found"])
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code.")
    trace_id: str
    instance: str | None = None
    errors: list[InvalidField] | None = Field(
        default=None, description="For validation errors: the offending fields."
    )


class ParleyError(Exception):
    """Base of every error the API reports on purpose."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)

    @classmethod
    def openapi(cls) -> dict[int | str, dict[str, Any]]:
        """A `responses=` entry so the OpenAPI lists this error."""
        return {
            cls.status: {
                "model": Problem,
                "description": f"{cls.title} (`{cls.code}`)",
                "content": {PROBLEM_JSON: {}},
            }
        }


class Unauthorized(ParleyError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class InvalidCredentials(ParleyError):
    status = 401
    code = "invalid_credentials"
    title = "Invalid email or password"


class InvalidToken(ParleyError):
    status = 401
    code = "invalid_token"
    title = "The token is invalid or expired"


class Forbidden(ParleyError):
    status = 403
    code = "forbidden"
    title = "You do not have permission to do this"


class TenantSuspended(ParleyError):
    status = 403
    code = "tenant_suspended"
    title = "This workspace is suspended"


class NotFound(ParleyError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ParleyError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Unprocessable(ParleyError):
    status = 422
    code = "unprocessable"
    title = "The request cannot be processed"


class TooManyRequests(ParleyError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(ParleyError):
    status = 503
    code = "service_unavailable"
    title = "The service is temporarily unavailable"


def merge_responses(*errors: type[ParleyError]) -> dict[int | str, dict[str, Any]]:
    """Combine several errors' `responses=` entries (same status → one entry)."""
    out: dict[int | str, dict[str, Any]] = {}
    for err in errors:
        for status, spec in err.openapi().items():
            if status in out:
                out[status]["description"] += f"; {err.title} (`{err.code}`)"
            else:
                out[status] = dict(spec)
    return out


def problem_document(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9457 body every error answer carries, for handlers and for the ASGI paths that
    answer without a Request (body limit, channel ingress)."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "trace_id": current_trace_id(),
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = problem_document(
        status=status,
        code=code,
        title=title,
        detail=detail,
        instance=request.url.path,
        errors=errors,
        extra=extra,
    )
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_failed", "The request is invalid"),
    429: ("rate_limited", "Too many requests"),
}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if isinstance(p, str | int)]
        out.append({"loc": loc, "message": str(err.get("msg", "")), "type": str(err.get("type"))})
    return out


def _is_bad_text(exc: BaseException) -> bool:
    """Text PostgreSQL refuses (NUL bytes) or Python cannot encode (lone surrogates): bad
    input from the client, not a server fault."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UnicodeEncodeError):
            return True
        if type(current).__name__ in (
            "CharacterNotInRepertoireError",
            "UntranslatableCharacterError",
        ):
            return True
        current = current.__cause__ or current.__context__ or getattr(current, "orig", None)
    return False


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ParleyError)
    async def _parley(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ParleyError)
        return problem_response(
            request,
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = _field_errors(exc)
        names = ", ".join(".".join(str(p) for p in f["loc"]) for f in fields[:5])
        return problem_response(
            request,
            status=422,
            code="validation_failed",
            title="The request is invalid",
            detail=f"Invalid fields: {names}" if names else "The request body is invalid",
            errors=fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(
            request,
            status=exc.status_code,
            code=code,
            title=title,
            detail=detail,
            headers=dict(exc.headers or {}),
        )

    async def _database_or_text(request: Request, exc: Exception) -> JSONResponse:
        if is_unavailable(exc):
            return _unavailable(request, exc)
        if _is_bad_text(exc):
            return problem_response(
                request,
                status=422,
                code="invalid_text",
                title="The request contains characters that cannot be stored",
                detail="Text must be valid UTF-8 without NUL characters or lone surrogates.",
            )
        state = _sqlstate(exc)
        refused = sql_problem(exc)
        if refused is not None:
            return problem_response(request, **refused)
        if state == FOREIGN_KEY_VIOLATION:
            # A row that names another that is gone (404), or a delete of a row others still
            # name (409): a race with a delete or a stale id, not a server fault.
            still_referenced = "still referenced" in str(exc)
            return problem_response(
                request,
                status=409 if still_referenced else 404,
                code="still_referenced" if still_referenced else "referenced_not_found",
                title="Other records still refer to this"
                if still_referenced
                else "Something this request refers to does not exist",
                detail="Remove what refers to it first."
                if still_referenced
                else "A referenced record was not found (it may just have been deleted).",
            )
        # Never the exception's text: a database error can carry the statement's values.
        structlog.get_logger(__name__).error(  # a fresh logger: error paths are rare
            "http.database_error",
            path=request.url.path,
            error=type(exc).__name__,
            sqlstate=state,
        )
        return _internal_error(request)

    app.add_exception_handler(DBAPIError, _database_or_text)
    app.add_exception_handler(asyncpg.PostgresError, _database_or_text)  # driver_statement
    app.add_exception_handler(UnicodeEncodeError, _database_or_text)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_unavailable(exc):
            return _unavailable(request, exc)
        return _unhandled(request, exc)

    async def _connection(request: Request, exc: Exception) -> JSONResponse:
        if is_unavailable(exc):
            return _unavailable(request, exc)
        return _unhandled(request, exc)

    for cls in UNAVAILABLE_CLASSES:
        app.add_exception_handler(cls, _connection)
    app.add_exception_handler(PoolTimeout, _connection)
    app.add_exception_handler(DisconnectionError, _connection)


def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger = structlog.get_logger(__name__)  # a fresh logger: error paths are rare
    if _sqlstate(exc) is not None:
        # Not a database error's text or traceback: either can carry a statement's values
        # (asyncpg quotes a parameter it could not encode).
        logger.error("http.unhandled_error", path=request.url.path, error=type(exc).__name__)
    else:
        logger.exception("http.unhandled_error", path=request.url.path)
    return _internal_error(request)


FOREIGN_KEY_VIOLATION = "23503"

# Work refused by the database itself (`parley_quota_refuse`, migration 0025): the SQLSTATE
# names the HTTP status and DETAIL carries the problem's members as JSON.
SQL_PROBLEM_STATUS = {"PQ402": 402, "PQ429": 429}
_SQL_PROBLEM_TITLES = {
    "quota_exceeded": "The workspace's plan limit is reached",
    "visitor_budget_exceeded": "This visitor's daily budget is used up",
}


def _driver_detail(exc: BaseException) -> str | None:
    """DETAIL of the asyncpg error behind `exc` (raised directly or wrapped by SQLAlchemy)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        candidate = todo.pop()
        if candidate is None or any(candidate is s for s in seen):
            continue
        seen.append(candidate)
        detail = getattr(candidate, "detail", None)
        if isinstance(detail, str) and detail.startswith("{"):
            return detail
        todo += [getattr(candidate, "orig", None), candidate.__cause__]
    return None


def sql_problem(exc: BaseException) -> dict[str, Any] | None:
    """The problem (keyword arguments of `problem_response`) of work the database refused
    over a plan limit or a visitor's budget; None for any other error."""
    status = SQL_PROBLEM_STATUS.get(_sqlstate(exc) or "")
    raw = _driver_detail(exc) if status is not None else None
    if status is None or raw is None:
        return None
    found: dict[str, Any] = json.loads(raw)
    code = str(found.get("code") or "quota_exceeded")
    metric = str(found.get("metric"))
    limit, used, reset_at = found.get("limit"), found.get("used"), found.get("reset_at")
    detail = f"{metric}: {used} used of {limit}" + (f"; resets at {reset_at}." if reset_at else ".")
    headers = {}
    if status == 429 and found.get("retry_after") is not None:
        headers["Retry-After"] = str(int(found["retry_after"]))
    return {
        "status": status,
        "code": code,
        "title": _SQL_PROBLEM_TITLES.get(code, "The request is over a limit"),
        "detail": detail,
        "headers": headers,
        "extra": {
            "metric": metric,
            "limit": limit,
            "used": used,
            "reset_at": reset_at,
            "message": found.get("message"),
        },
    }


RETRY_AFTER_SECONDS = 5
"""What a client is told to wait when the database is away: a restart or a fail-over takes
seconds, and clients that all retry at once the moment it returns would only slow it down."""

# SQLSTATE classes that mean "the server is not there now", not "this statement is wrong":
# 08 connection exceptions, 57P01–57P03 admin/crash shutdown and "cannot connect now"
# (starting up or shutting down), 53300 too many connections.
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03", "53300")
_UNAVAILABLE_TYPES = (
    "ConnectionDoesNotExistError",  # asyncpg: the server closed it mid-statement
    "InterfaceError",  # asyncpg: "connection is closed" / pool closing
    "InternalClientError",  # asyncpg: "cannot switch to state" after a cut connection
    "TooManyConnectionsError",
)
# A refused or reset TCP connection, or a Unix socket file that is gone (the server is
# stopped): only when raised from inside the database driver, not from a file or an HTTP call.
_CONNECT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ENOENT,
        errno.EPIPE,
        errno.ETIMEDOUT,
    }
)
UNAVAILABLE_CLASSES: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
"""Raised outside SQLAlchemy's DBAPIError wrapping (connecting, the asyncpg pool): handled
explicitly, since Starlette re-raises whatever reaches its catch-all handler."""


def _through_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("asyncpg"):
            return True
        tb = tb.tb_next
    return False


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) says the database cannot be reached right now: a
    server restarting, a cut connection, a pool that could not get one in time. Such a
    request can succeed when retried, so it is a 503, not a 500."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PoolTimeout | DisconnectionError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_STATES):
            return True
        if isinstance(current, OSError):
            if current.errno in _CONNECT_ERRNOS and _through_driver(current):
                return True
        elif type(current).__name__ in _UNAVAILABLE_TYPES and type(current).__module__.startswith(
            "asyncpg"
        ):
            return True
        current = current.__cause__ or current.__context__ or getattr(current, "orig", None)
    return False


def _unavailable(request: Request, exc: BaseException) -> JSONResponse:
    structlog.get_logger(__name__).warning(
        "http.database_unavailable", path=request.url.path, error=type(exc).__name__
    )
    return problem_response(
        request,
        status=503,
        code="database_unavailable",
        title="The database is temporarily unavailable",
        detail=(
            f"Retry in {RETRY_AFTER_SECONDS} s (with the same Idempotency-Key where the "
            "request takes one: it may or may not have been applied)."
        ),
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of an asyncpg error, raised directly or wrapped by SQLAlchemy."""
    for candidate in (exc, getattr(exc, "orig", None), getattr(exc, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _internal_error(request: Request) -> JSONResponse:
    return problem_response(
        request,
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="Something went wrong on our side; the trace_id identifies it in our logs.",
    )
