"""Templates (Jinja2, autoescaped), versioned static files, and the pages' CSP.

Every page extends `base.html`. A request from htmx that targets a part of the page (by id,
`HX-Target`) gets only that part (`parts=` maps ids to templates); boosted navigation gets the
whole page.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from parley.console import session as cookie
from parley.kit.runtime import get_runtime

HERE = Path(__file__).parent
STATIC = HERE / "static"
HTMX = "htmx-2.0.11.min.js"
HTMX_SSE = "htmx-ext-sse-2.2.4.min.js"
# No inline script or style anywhere; the widget preview frame loads the real widget from
# this same server.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-src 'self'; frame-ancestors 'none'"
)
HTMX_CONFIG = json.dumps(
    {
        "allowEval": False,
        "includeIndicatorStyles": False,
        "historyCacheSize": 0,
        # No `style` among the settled attributes: copying it is an inline style, which the
        # CSP refuses (and the console never sets one).
        "attributesToSettle": ["class", "width", "height"],
        "responseHandling": [
            {"code": "204", "swap": False},
            {"code": "[23]..", "swap": True},
            {"code": "422", "swap": True},
            {"code": "[45]..", "swap": True, "error": True},
        ],
    },
    separators=(",", ":"),
)


@cache
def static_files() -> dict[str, tuple[str, bytes]]:
    """{versioned name: (content type, body)}; our own files get a content hash in the name,
    vendored ones carry their version already."""
    out: dict[str, tuple[str, bytes]] = {}
    for path in STATIC.iterdir():
        body = path.read_bytes()
        kind = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}.get(
            path.suffix, "application/octet-stream"
        )
        name = path.name
        if path.name.startswith("console."):
            name = f"{path.stem}.{hashlib.sha256(body).hexdigest()[:10]}{path.suffix}"
        out[name] = (kind + "; charset=utf-8", body)
    return out


@cache
def _versioned() -> dict[str, str]:
    names: dict[str, str] = {}
    for name in static_files():
        parts = name.split(".")
        plain = f"{parts[0]}.{parts[-1]}" if name.startswith("console.") else name
        names[plain] = name
    return names


def static_url(name: str) -> str:
    return "/console/static/" + _versioned()[name]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 passage", "3 passages": a count with its noun agreeing (`plural` when not `noun`+s)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.update(static_url=static_url, HTMX=HTMX, HTMX_SSE=HTMX_SSE, HTMX_CONFIG=HTMX_CONFIG)
    env.filters["counted"] = counted
    return env


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    parts: dict[str, str] | None = None,
) -> HTMLResponse:
    runtime = get_runtime(request)
    context.setdefault("csrf", cookie.csrf_token(runtime, cookie.csrf_secret(request)))
    context.setdefault("request_path", request.url.path)
    context.setdefault("request", request)
    name = template
    if parts and is_htmx(request):
        # htmx names the element it swaps (`HX-Target`): answer with only that part.
        name = parts.get(request.headers.get("hx-target") or "", template)
    body = environment().get_template(name).render(context)
    response = HTMLResponse(body, status_code=status, headers=page_headers())
    cookie.ensure_csrf_cookie(runtime, request, response)
    return response


def page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "Vary": "HX-Request"}


def redirect(request: Request, url: str) -> Response:
    """After a successful post: a 303 for a plain form, `HX-Location` for htmx (which then
    fetches the page and swaps the body, keeping history)."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Location": url, **page_headers()})
    return RedirectResponse(url, status_code=303, headers=page_headers())
