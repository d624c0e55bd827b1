"""structlog set-up: JSON lines in production, readable lines in a terminal.

Log events are dotted names with ids as keywords. Message text, prompts, tokens, passwords and
other secrets are never logged; `redact_secrets` is a last line of defence for keys that look
sensitive.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SENSITIVE = (
    "password",
    "token",
    "secret",
    "authorization",
    "api_key",
    "key_hash",
    "content",
    "email",
)


def redact_secrets(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        lowered = key.lower()
        if lowered != "event" and any(s in lowered for s in _SENSITIVE):
            event_dict[key] = "[redacted]"
    return event_dict


class StderrLogger:
    """Writes each line to the `sys.stderr` of the moment, not the one at configuration: a
    logger cached on first use (`cache_logger_on_first_use`) then never writes to a stream
    that was swapped out and closed (a test's captured output, a re-configured app)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger(*args: Any) -> StderrLogger:
    return StderrLogger()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.INFO), stream=sys.stderr, format="%(message)s")
    # httpx logs every request URL at INFO, and a Telegram Bot API URL carries the bot token.
    for noisy in ("pgqueuer", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
