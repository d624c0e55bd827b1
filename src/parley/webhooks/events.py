"""The `data` of each event the product emits (documented in docs/webhooks.md)."""

from __future__ import annotations

import uuid
from typing import Any

from parley.kit import sqlnames
from parley.models import Conversation, KnowledgeJob, KnowledgeSource, Message

USAGE_THRESHOLD = sqlnames.USAGE_THRESHOLD  # also named by `parley_usage_check_request`

_EMITTED = uuid.UUID("5d0c7f3e-8a51-4f0e-9a5c-2f1f6a3c9b10")  # namespace of emitted-event ids
_USAGE = uuid.UUID("9b7e2c41-3f6a-4d8e-b5a0-7c1d2e9f4a63")  # namespace of usage-threshold subjects


def emitted_id(event: str, subject_id: uuid.UUID) -> uuid.UUID:
    """The dedupe key of an event about one subject (`emitted_events.id`)."""
    return uuid.uuid5(_EMITTED, f"{event}:{subject_id}")


def conversation_started(c: Conversation) -> dict[str, Any]:
    return {
        "conversation_id": str(c.id),
        "bot_id": str(c.bot_id),
        "channel_id": str(c.channel_id),
    }


def message_created(m: Message, *, fallback: bool = False) -> dict[str, Any]:
    """`fallback`: the bot answered with its fallback text (it found no answer)."""
    return {
        "conversation_id": str(m.conversation_id),
        "message_id": str(m.id),
        "role": m.role,
        "text": m.content,
        "citations": list(m.citations or []),
        "fallback": fallback,
    }


def knowledge_job_completed(
    job: KnowledgeJob, source: KnowledgeSource | None, *, error_code: str | None = None
) -> dict[str, Any]:
    """One ingestion run's outcome. `chunks` counts the version this job built (0 when it
    failed); `source_status` says whether the source still serves (a failed re-index keeps the
    previous version: `ready`)."""
    failed = job.status == "failed"
    return {
        "job_id": str(job.id),
        "source_id": str(job.source_id),
        "kind": job.kind,
        "status": job.status,
        "index_version": job.index_version,
        "chunks": 0 if failed or source is None else source.chunk_count,
        "source_status": source.status if source is not None else None,
        "error": (
            {"code": error_code or "ingestion_failed", "message": job.error or ""}
            if failed
            else None
        ),
    }


def usage_threshold_subject(metric: str, period: str, threshold_percent: int) -> uuid.UUID:
    """The subject of one `usage.threshold` alert (its `emitted_events` row, with the tenant):
    one per metric, calendar month and level."""
    return uuid.uuid5(_USAGE, f"{metric}:{period}:{threshold_percent}")


def usage_threshold(
    *, metric: str, period: str, threshold_percent: int, used: int, limit: int, plan: str
) -> dict[str, Any]:
    """A workspace's month-to-date usage of `metric` reached `threshold_percent` of its plan's
    limit. `period` is the calendar month (UTC), `YYYY-MM`."""
    return {
        "metric": metric,
        "period": period,
        "threshold_percent": threshold_percent,
        "used": used,
        "limit": limit,
        "plan": plan,
    }
