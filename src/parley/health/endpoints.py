"""`/healthz` (alive), `/readyz` (dependencies), `/metrics` (Prometheus). Public by design,
except `/metrics` when PARLEY_METRICS_TOKEN is set (it then needs that bearer token)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from parley.health import service
from parley.kit.errors import (
    RETRY_AFTER_SECONDS,
    ServiceUnavailable,
    Unauthorized,
    merge_responses,
    problem_response,
)
from parley.kit.metrics import REGISTRY
from parley.kit.runtime import get_runtime
from parley.kit.security import constant_time_equals

log = structlog.get_logger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database, migrations, queue, Redis, pgvector",
    responses=merge_responses(ServiceUnavailable),
)
async def readyz(request: Request) -> Any:
    ok, checks = await service.readiness(get_runtime(request))
    if ok:
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, c in checks.items() if not c.get("ok"))
    return problem_response(
        request,
        status=503,
        code="not_ready",
        title="Not ready",
        detail=f"Failing checks: {failing}",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        extra={"checks": checks},
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **merge_responses(Unauthorized)},
)
async def metrics(request: Request) -> Response:
    token = get_runtime(request).settings.parley_metrics_token
    if token is not None:
        sent = request.headers.get("authorization", "")
        if not constant_time_equals(sent, "Bearer " + token.get_secret_value()):
            raise Unauthorized(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    try:
        await service.refresh_queue_metrics(get_runtime(request))
    except Exception as exc:  # metrics must still render when the database is down
        log.warning("metrics.queue_refresh_failed", error=type(exc).__name__)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
