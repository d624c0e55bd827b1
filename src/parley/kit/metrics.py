"""Prometheus metrics: HTTP by route template (never raw paths, which would explode cardinality)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "parley_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "parley_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
JOBS_QUEUED = Gauge(
    "parley_jobs_queued",
    "Jobs waiting in the queue, by entrypoint (sampled when /metrics is scraped).",
    ["entrypoint"],
    registry=REGISTRY,
)
JOBS_FAILED = Gauge(
    "parley_jobs_failed",
    "Jobs held as failed for inspection and re-run, by entrypoint.",
    ["entrypoint"],
    registry=REGISTRY,
)
JOBS_DONE = Counter(
    "parley_jobs_total",
    "Jobs run by this process, by entrypoint and outcome.",
    ["entrypoint", "outcome"],
    registry=REGISTRY,
)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(template, method, str(status)).inc()
            HTTP_LATENCY.labels(template, method).observe(time.perf_counter() - start)


LLM_LATENCY = Histogram(
    "parley_llm_turn_seconds",
    "LLM turn latency (whole answer) by provider.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)
LLM_TTFT = Histogram(
    "parley_llm_time_to_first_token_seconds",
    "Time to the first streamed token by provider.",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "parley_llm_tokens_total",
    "Tokens by provider and direction (prompt/completion).",
    ["provider", "direction"],
    registry=REGISTRY,
)
LLM_ERRORS = Counter(
    "parley_llm_errors_total", "Failed LLM turns by provider.", ["provider"], registry=REGISTRY
)
VOICE_TURNS = Counter(
    "parley_voice_turns_total",
    "Voice turns by channel and outcome (succeeded, interrupted, failed).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
VOICE_STT_SECONDS = Histogram(
    "parley_voice_transcription_seconds",
    "Speech-to-text time per utterance, by provider.",
    ["provider"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2.5, 5, 10),
    registry=REGISTRY,
)
VOICE_TTS_SECONDS = Histogram(
    "parley_voice_synthesis_seconds",
    "Text-to-speech time per sentence, by provider.",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
VOICE_FAILURES = Counter(
    "parley_voice_failures_total",
    "Voice failures by kind (the problem code: audio_too_large, speech_unavailable…).",
    ["kind"],
    registry=REGISTRY,
)
SSE_CONNECTIONS = Gauge(
    "parley_sse_connections", "Open server-sent-event streams.", ["stream"], registry=REGISTRY
)
WEBHOOK_DEAD_LETTERS = Gauge(
    "parley_webhook_dead_letters",
    "Webhook deliveries in the dead-letter queue, all tenants (sampled when /metrics is scraped).",
    registry=REGISTRY,
)
WEBHOOK_FAILURES = Counter(
    "parley_webhook_delivery_failures_total",
    "Failed webhook delivery attempts by this process, by kind "
    "(http_status, redirect, network, refused).",
    ["kind"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "parley_webhook_deliveries_total",
    "Webhook delivery outcomes by this process (delivered, retry, dead, deferred, handed_over).",
    ["outcome"],
    registry=REGISTRY,
)
INBOUND_RECEIVED = Counter(
    "parley_inbound_deliveries_total",
    "Channel deliveries received, by channel type and outcome "
    "(accepted, duplicate, ignored, refused).",
    ["channel_type", "outcome"],
    registry=REGISTRY,
)
INBOUND_EVENTS = Gauge(
    "parley_inbound_events",
    "Inbound channel events not yet done, by status (received, processing, failed); sampled "
    "when /metrics is scraped.",
    ["status"],
    registry=REGISTRY,
)
CHANNEL_SENDS = Counter(
    "parley_channel_sends_total",
    "Replies sent to channels (sendMessage, callback POST), by channel type and outcome.",
    ["channel_type", "outcome"],
    registry=REGISTRY,
)
