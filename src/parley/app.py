"""`create_app()`: routers, middleware, error handlers, and the lifespan that builds the
process's runtime (database, keys, limiter, optional Redis, in-process job worker)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import parley.tasks  # noqa: F401  (registers the product's jobs with the worker)
from parley import __version__
from parley.admin.endpoints import router as admin_router
from parley.analytics.endpoints import router as analytics_router
from parley.analytics.gate_endpoints import router as quality_gate_router
from parley.audit.endpoints import router as audit_router
from parley.auth.endpoints import router as auth_router
from parley.automations.endpoints import router as automations_router
from parley.bots.endpoints import router as bots_router
from parley.channels.endpoints import router as channels_router
from parley.channels.inbound_endpoints import router as channel_ingress_router
from parley.channels.ingress_fastpath import IngressFastPath
from parley.compat.endpoints import router as compat_router
from parley.console import errors as console_errors
from parley.console.router import router as console_router
from parley.conversations.endpoints import router as conversations_router
from parley.demo.page import router as demo_router
from parley.health.endpoints import router as health_router
from parley.kit import telemetry
from parley.kit.boot import build_runtime
from parley.kit.db import platform_session
from parley.kit.errors import install_error_handlers
from parley.kit.headers import SecurityHeadersMiddleware
from parley.kit.jobs import REGISTRY, Worker
from parley.kit.jsonbody import JsonBodyGuard
from parley.kit.limits import BodyReadTimeoutMiddleware, BodySizeLimitMiddleware
from parley.kit.logging import configure_logging
from parley.kit.metrics import MetricsMiddleware
from parley.kit.requestid import RequestIdMiddleware
from parley.kit.runtime import Runtime
from parley.knowledge.endpoints import router as knowledge_router
from parley.lifecycle.endpoints import router as lifecycle_router
from parley.llm.credential_endpoints import router as credentials_router
from parley.llm.endpoints import router as llm_router
from parley.settings import Settings, get_settings
from parley.tenants.endpoints import router as tenants_router
from parley.tenants.joining import router as joining_router
from parley.usage.endpoints import admin_router as usage_admin_router
from parley.usage.endpoints import router as usage_router
from parley.usage.plans import sync_plans
from parley.voice.endpoints import router as voice_router
from parley.webhooks.endpoints import router as webhooks_router
from parley.widget.cors import WidgetCORSMiddleware
from parley.widget.endpoints import router as widget_router
from parley.widget.static_endpoints import router as widget_static_router

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.parley_log_level, settings.parley_log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = database_url or (
            settings.database_url.get_secret_value() if settings.database_url else None
        )
        if url is None:
            raise RuntimeError("DATABASE_URL is not set; start with `parley serve`")
        runtime = await build_runtime(settings, url)
        async with platform_session(runtime.db) as session:
            await sync_plans(session, settings)  # the limits the database enforces (0025)
        app.state.runtime = runtime
        worker_task: asyncio.Task[None] | None = None
        worker: Worker | None = None
        if settings.parley_worker_in_process:
            worker = make_worker(runtime)
            worker_task = asyncio.create_task(worker.run())
        # Everything loaded so far (the SDKs, models, routes, settings) lives as long as the
        # process: moved out of the collector's sight, a full collection no longer walks it.
        # Without this, one took 150–190 ms on the API process, stalling every stream at once
        # (P2's p99).
        gc.freeze()
        log.info("app.started", version=__version__, worker=bool(worker))
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(worker_task, timeout=10)
            for client in runtime.clients.values():
                with contextlib.suppress(Exception):
                    await client.aclose()
            if runtime.redis is not None:
                await runtime.redis.aclose()
            await runtime.db.dispose()
            telemetry.stop()

    app = FastAPI(
        title="Parley API",
        version=__version__,
        description="Multi-tenant AI chat assistants. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # The hot paths first, since routes match in order: the widget's requests, then channel
    # ingress (answered by IngressFastPath; registered for the OpenAPI document and for the
    # requests the fast path passes on).
    for router in (
        widget_router,
        voice_router,
        channel_ingress_router,
        health_router,
        joining_router,
        auth_router,
        tenants_router,
        bots_router,
        knowledge_router,
        channels_router,
        audit_router,
        lifecycle_router,
        llm_router,
        credentials_router,
        compat_router,
        webhooks_router,
        automations_router,
        conversations_router,
        analytics_router,
        quality_gate_router,
        widget_static_router,
        demo_router,
        admin_router,
        usage_router,
        usage_admin_router,
        console_router,
    ):
        app.include_router(router)
    console_errors.install(app)  # console paths render errors as pages

    # Outermost first: ids and metrics see everything, including rejected bodies.
    # Innermost: JSON bodies too deep or with non-finite numbers are refused (issue 15).
    app.add_middleware(JsonBodyGuard, max_depth=settings.parley_json_max_depth)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.parley_max_body_bytes,
        # File uploads: the file limit plus room for the multipart framing.
        larger=(
            (UPLOAD_PATH, settings.parley_knowledge_max_file_bytes + 65_536),
            # A voice upload: its own limit answers first, with `audio_too_large`.
            (VOICE_PATH, settings.parley_voice_max_upload_bytes + 65_536),
        ),
    )
    if settings.parley_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.parley_cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "RateLimit-Limit", "RateLimit-Remaining"],
        )
    app.add_middleware(WidgetCORSMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    # Outermost: channel ingress answers here, before the stack above (SPEC P7).
    app.add_middleware(IngressFastPath)
    if settings.otel_exporter_otlp_endpoint:
        app.add_middleware(telemetry.TracingMiddleware)  # outermost: ingress is traced too
    # ...behind a read timeout on trickling bodies, which covers ingress too (issue 15).
    app.add_middleware(BodyReadTimeoutMiddleware, seconds=settings.parley_body_read_timeout_seconds)
    return app


UPLOAD_PATH = r"/v1/tenants/[^/]+/knowledge/sources"
VOICE_PATH = r"/v1/widget/voice$"


def make_worker(runtime: Runtime) -> Worker:

    s = runtime.settings
    return Worker(
        db=runtime.db,
        registry=REGISTRY,
        runtime=runtime,
        max_attempts=s.parley_job_max_attempts,
        concurrency=s.parley_worker_concurrency,
        batch_size=s.parley_worker_batch_size,
        heartbeat_timeout=timedelta(seconds=s.parley_job_heartbeat_timeout_seconds),
    )
