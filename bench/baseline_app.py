"""The same-run baseline: a bare Starlette app with a JSON endpoint (no auth, no database)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def echo(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"message": body, "items": []}, status_code=201)


app = Starlette(routes=[Route("/healthz", healthz), Route("/echo", echo, methods=["POST"])])
