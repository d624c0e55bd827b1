"""Errors on console pages are pages: the same `ParleyError`s the API renders as problem+json,
shown with a sentence a person understands (and a sign-in redirect where the session is gone).
Everything outside `/console` keeps the API's handlers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.console import render
from parley.console.door import SignInRequired
from parley.console.messages import problem_message
from parley.kit.errors import ParleyError

PREFIX = "/console"


def _sign_in(request: Request) -> Response:
    target = "/console/login"
    if request.method == "GET" and request.url.path.startswith("/console/"):
        target += "?next=" + request.url.path
    if render.is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _page(request: Request, status: int, title: str, message: str) -> Response:
    return render.page(request, "error.html", {"title": title, "message": message}, status=status)


def install(app: FastAPI) -> None:
    """Wrap the API's handlers: console paths get pages, the rest is unchanged."""
    handlers: dict[Any, Any] = dict(app.exception_handlers)

    async def parley_error(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(PREFIX):
            response: Response = await handlers[ParleyError](request, exc)
            return response
        assert isinstance(exc, ParleyError)
        if isinstance(exc, SignInRequired):
            return _sign_in(request)
        return _page(request, exc.status, exc.title, problem_message(exc))

    async def validation(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(PREFIX):
            response: Response = await handlers[RequestValidationError](request, exc)
            return response
        return _page(request, 404, "Not found", "This address does not point to anything.")

    async def http(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(PREFIX):
            response: Response = await handlers[StarletteHTTPException](request, exc)
            return response
        assert isinstance(exc, StarletteHTTPException)
        return _page(
            request,
            exc.status_code,
            "Not found" if exc.status_code == 404 else "Error",
            "This address does not point to anything."
            if exc.status_code == 404
            else str(exc.detail),
        )

    app.add_exception_handler(ParleyError, parley_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
