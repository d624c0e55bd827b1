"""The console's cookie session and CSRF token.

The cookie holds a signed token naming the user and the session family the auth service
created at sign-in (the same `auth_sessions` rows the API's refresh tokens use), so logging out
(`revoke_family`) or deactivating the user ends it on the next request. A new family, and so a
new cookie, is made at every sign-in. The CSRF token is an HMAC of a random cookie under the
signing keys: a page on another site can neither read the cookie nor compute the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from fastapi import Request, Response

from parley.kit.db import UserId
from parley.kit.errors import Forbidden
from parley.kit.runtime import Runtime
from parley.kit.security import TokenError

SESSION_COOKIE = "parley_console"
CSRF_COOKIE = "parley_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
AUDIENCE = "parley:console-cookie"
TOKEN_TYPE = "console_session"  # noqa: S105  (a token type, not a secret)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfRefused(Forbidden):
    code = "csrf_failed"
    title = "The form expired or came from another site"


@dataclass(frozen=True)
class CookieSession:
    user_id: UserId
    family: uuid.UUID


def secure_cookies(runtime: Runtime) -> bool:
    """Secure outside development (browsers keep Secure cookies of http://localhost and
    127.0.0.1 too, so the test suite's plain-http servers work with it)."""
    return runtime.settings.parley_env != "development"


def issue(runtime: Runtime, response: Response, user_id: UserId, family: uuid.UUID) -> None:
    ttl = runtime.settings.parley_refresh_token_ttl_seconds
    token, _ = runtime.keyring.issue(
        subject=str(user_id),
        audience=AUDIENCE,
        token_type=TOKEN_TYPE,
        ttl_seconds=ttl,
        claims={"sid": str(family)},
    )
    secure = secure_cookies(runtime)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=ttl, httponly=True, samesite="lax", secure=secure, path="/"
    )
    # A fresh CSRF secret with every new session (a token seen before sign-in is worthless).
    response.set_cookie(
        CSRF_COOKIE, new_csrf_secret(), httponly=True, samesite="lax", secure=secure, path="/"
    )


def clear(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def read(runtime: Runtime, request: Request) -> CookieSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 4096:
        return None
    try:
        claims = runtime.keyring.verify(token, audience=AUDIENCE, token_type=TOKEN_TYPE)
        return CookieSession(UserId(uuid.UUID(str(claims["sub"]))), uuid.UUID(str(claims["sid"])))
    except (TokenError, KeyError, ValueError):
        return None


def new_csrf_secret() -> str:
    return secrets.token_urlsafe(24)


def csrf_secret(request: Request) -> str:
    """The request's CSRF secret: the cookie's, or one made now (set by `ensure_csrf_cookie`)."""
    found = request.cookies.get(CSRF_COOKIE)
    if found and len(found) <= 64:
        return found
    made: str | None = getattr(request.state, "csrf_secret", None)
    if made is None:
        made = new_csrf_secret()
        request.state.csrf_secret = made
    return made


def csrf_token(runtime: Runtime, secret: str) -> str:
    key = runtime.keyring.signing[0].key
    return hmac.new(key, b"csrf|" + secret.encode(), hashlib.sha256).hexdigest()


def csrf_valid(runtime: Runtime, secret: str | None, token: str | None) -> bool:
    if not secret or not token:
        return False
    for signing in runtime.keyring.signing:  # a token made before a key rotation still holds
        expected = hmac.new(signing.key, b"csrf|" + secret.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, token):
            return True
    return False


async def check_csrf(runtime: Runtime, request: Request) -> None:
    """Refuse a state-changing request without the token (header from htmx, or form field)."""
    if request.method not in UNSAFE:
        return
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
    if not csrf_valid(runtime, request.cookies.get(CSRF_COOKIE), token):
        raise CsrfRefused()


def ensure_csrf_cookie(runtime: Runtime, request: Request, response: Response) -> None:
    made: str | None = getattr(request.state, "csrf_secret", None)
    if made is not None and request.cookies.get(CSRF_COOKIE) is None:
        response.set_cookie(
            CSRF_COOKIE,
            made,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(runtime),
            path="/",
        )
