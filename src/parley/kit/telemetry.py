"""Optional telemetry: OpenTelemetry traces (OTLP/HTTP) and Sentry error reports.

Both are off unless configured (`OTEL_EXPORTER_OTLP_ENDPOINT`, `SENTRY_DSN`) and need the
`telemetry` extra. No personal data leaves the process:
- spans carry only allow-listed attributes (route templates, SQL text with placeholders,
  job and model names, status codes, counts), never bodies, query strings, headers, bound
  values or exception messages (an error span says only the exception's type);
- Sentry events are scrubbed before sending: no request body, cookies, headers, query string,
  user, local variables, breadcrumbs or exception messages.
The tracer provider is this module's own (not the global one), so starting and stopping an
app in a test leaves nothing behind.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import event

if TYPE_CHECKING:
    from asyncpg.connection import LoggedQuery
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from parley.kit.db import Database
    from parley.settings import Settings

log = structlog.get_logger(__name__)

ALLOWED_ATTRIBUTES = frozenset(
    {
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "db.system",
        "db.statement",
        "job.entrypoint",
        "job.attempt",
        "llm.provider",
        "llm.model",
        "llm.attempt",
        "error.type",
    }
)
_MAX_VALUE = 500


class _State:
    provider: Any = None
    tracer: Any = None
    sentry: bool = False


_state = _State()


def tracing_enabled() -> bool:
    return _state.tracer is not None


def start(settings: Settings) -> None:
    """Turn on what is configured; a configured feature without the extra is an error."""
    if settings.otel_exporter_otlp_endpoint and _state.tracer is None:
        try:
            # Optional heavy dependency (the `telemetry` extra), imported only when configured.
            # lazy: optional: the OpenTelemetry SDK only when OTLP export is configured
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise RuntimeError(
                "OTEL_EXPORTER_OTLP_ENDPOINT needs `pip install parley[telemetry]`"
            ) from exc
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.otel_service_name})
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=endpoint, timeout=5), schedule_delay_millis=1000
            )
        )
        _state.provider = provider
        _state.tracer = provider.get_tracer("parley")
        log.info("telemetry.tracing_on")
    if settings.sentry_dsn is not None and not _state.sentry:
        try:
            # Optional heavy dependency (the `telemetry` extra), imported only when configured.
            # lazy: optional: the Sentry SDK only when SENTRY_DSN is set
            import sentry_sdk
            from sentry_sdk.integrations.logging import LoggingIntegration
        except ImportError as exc:
            raise RuntimeError("SENTRY_DSN needs `pip install parley[telemetry]`") from exc
        sentry_sdk.init(
            dsn=settings.sentry_dsn.get_secret_value(),
            environment=settings.parley_env,
            send_default_pii=False,
            include_local_variables=False,
            max_request_body_size="never",
            before_send=scrub_event,  # type: ignore[arg-type]
            before_breadcrumb=lambda crumb, hint: None,
            traces_sample_rate=0.0,
            # Log lines are not events: a rendered log line can quote an exception message.
            integrations=[LoggingIntegration(level=None, event_level=None)],
        )
        _state.sentry = True
        log.info("telemetry.sentry_on")


def stop() -> None:
    """Flush and turn everything off (app shutdown)."""
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.provider = None
    _state.tracer = None
    if _state.sentry:
        # lazy: optional: the Sentry SDK only when SENTRY_DSN is set
        import sentry_sdk

        client = sentry_sdk.get_client()
        client.flush(timeout=5)
        client.close()
        sentry_sdk.init(dsn=None)
        _state.sentry = False


def report_exception(exc: BaseException) -> None:
    """Send an error Sentry's framework integrations cannot see (a job's final failure)."""
    if _state.sentry:
        # lazy: optional: the Sentry SDK only when SENTRY_DSN is set
        import sentry_sdk

        sentry_sdk.capture_exception(exc)


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key not in ALLOWED_ATTRIBUTES or value is None:
            continue
        out[key] = value if isinstance(value, int | float | bool) else str(value)[:_MAX_VALUE]
    return out


@contextmanager
def span(name: str, attributes: dict[str, Any] | None = None) -> Iterator[Any]:
    """A span around a block when tracing is on (yields None otherwise). Only
    `ALLOWED_ATTRIBUTES` are kept."""
    tracer = _state.tracer
    if tracer is None:
        yield None
        return
    # lazy: optional: OpenTelemetry only when tracing is on
    from opentelemetry.trace import Status, StatusCode

    with tracer.start_as_current_span(
        name,
        attributes=_clean(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            current.set_attribute("error.type", type(exc).__name__)
            raise


class TracingMiddleware:
    """One server span per HTTP request, named by its route template (never the path with
    ids, never the query string)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _state.tracer is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = str(scope.get("method", ""))
        with span(f"HTTP {method}", {"http.request.method": method}) as current:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                current.update_name(f"{method} {template}")
                current.set_attribute("http.route", template)
                current.set_attribute("http.response.status_code", status)


def instrument_database(db: Database) -> None:
    """DB spans: SQLAlchemy statements through engine events, the hot paths' asyncpg
    statements through the driver pool's query logger. SQL text only, never bound values."""
    if _state.tracer is None:
        return

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        tracer = _state.tracer
        if tracer is not None and context is not None:
            context._parley_span = tracer.start_span(
                "db", attributes=_clean({"db.system": "postgresql", "db.statement": statement})
            )

    def after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        current = getattr(context, "_parley_span", None)
        if current is not None:
            current.end()

    def failed(ctx: Any) -> None:
        current = getattr(ctx.execution_context, "_parley_span", None)
        if current is not None:
            current.set_attribute("error.type", type(ctx.original_exception).__name__)
            current.end()

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    event.listen(db.engine.sync_engine, "after_cursor_execute", after)
    event.listen(db.engine.sync_engine, "handle_error", failed)

    def driver_query(record: LoggedQuery) -> None:
        tracer = _state.tracer
        if tracer is None:
            return
        end = time.time_ns()
        attrs = {"db.system": "postgresql", "db.statement": record.query}
        if record.exception is not None:
            attrs["error.type"] = type(record.exception).__name__
        current = tracer.start_span(
            "db", attributes=_clean(attrs), start_time=end - int(record.elapsed * 1e9)
        )
        current.end(end_time=end)

    db.driver_loggers.append(driver_query)


_SECRETS = re.compile(r"(?i)(authorization|cookie|token|secret|password|key)")


def scrub_event(event: MutableMapping[str, Any], hint: Any) -> MutableMapping[str, Any]:
    """What Sentry may keep of an error: its type, where it happened (code, not data), the
    route and the release. Messages and every request detail are dropped."""
    request = event.get("request")
    if isinstance(request, dict):
        url = str(request.get("url", "")).split("?", 1)[0]
        event["request"] = {"method": request.get("method"), "url": url}
    for key in ("user", "extra", "breadcrumbs"):
        event.pop(key, None)
    for exc in (event.get("exception") or {}).get("values", []) or []:
        exc["value"] = "[scrubbed]"
        for frame in (exc.get("stacktrace") or {}).get("frames", []) or []:
            frame.pop("vars", None)
    entry = event.get("logentry")
    if isinstance(entry, dict):
        entry.pop("params", None)
        entry.pop("formatted", None)
    if "message" in event:
        event["message"] = "[scrubbed]"
    tags = event.get("tags")
    if isinstance(tags, dict):
        for name in list(tags):
            if _SECRETS.search(name):
                tags.pop(name)
    return event
