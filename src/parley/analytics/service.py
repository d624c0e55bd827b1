"""Metrics per workspace, bot, channel and day, read from the roll-ups.

The roll-ups are rewritten per (workspace, UTC day) from the source rows by `roll_up` (the
`analytics.rollup` job) whenever a trigger marked the day dirty, so late and duplicated
events cannot make them drift: a day is always equal to a recount of what is stored.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from parley.analytics import repository as repo
from parley.analytics.schemas import GroupBy, MetricsReport, MetricsRow, ModelRow, ModelsReport
from parley.bots import service as bots
from parley.channels import service as channels
from parley.kit.db import TenantId
from parley.kit.errors import Unprocessable

log = structlog.get_logger(__name__)

MAX_DAYS = 366
BATCH_DAYS = 31  # days recomputed per transaction


class BadRange(Unprocessable):
    code = "analytics_bad_range"
    title = "The date range is not valid"


def date_range(
    start: date | None, end: date | None, today: date | None = None
) -> tuple[date, date]:
    """The inclusive range asked for; the last 30 days by default."""
    today = today or datetime.now(UTC).date()
    end = end or today
    if start is None:
        start = end - timedelta(days=29) if end > date.min + timedelta(days=29) else date.min
    if start > end:
        raise BadRange(f"start ({start}) is after end ({end}).")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRange(f"At most {MAX_DAYS} days at a time; asked for {(end - start).days + 1}.")
    return start, end


async def roll_up(session: AsyncSession, tenant_id: TenantId, *, limit: int = BATCH_DAYS) -> int:
    """Recompute up to `limit` dirty days of the workspace in the caller's transaction;
    returns how many days were recomputed (0: nothing pending)."""
    await repo.lock_rollup(session, tenant_id)
    days = await repo.take_dirty(session, tenant_id, limit)
    if not days:
        return 0
    await repo.recompute(session, tenant_id, days)
    log.info("analytics.rolled_up", tenant_id=str(tenant_id), days=len(days))
    return len(days)


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def _row(key: str, s: dict[str, Any], ttft: tuple[int | None, int | None]) -> MetricsRow:
    n = {c: int(s.get(c) or 0) for c in repo.SUMS if c != "cost_usd"}
    return MetricsRow(
        key=key,
        conversations=n["conversations"],
        messages=n["messages"],
        user_messages=n["user_messages"],
        bot_messages=n["bot_messages"],
        operator_messages=n["operator_messages"],
        turns=n["turns"],
        answered=n["answered"],
        fallback=n["fallback"],
        unanswered=n["unanswered"],
        handoffs=n["handoffs"],
        handoff_rate=_ratio(n["handoffs"], n["conversations"]),
        resolved_by_bot=n["resolved_by_bot"],
        resolved_by_person=n["resolved_by_person"],
        feedback_up=n["feedback_up"],
        feedback_down=n["feedback_down"],
        csat=_ratio(n["feedback_up"], n["feedback_up"] + n["feedback_down"]),
        first_bot_reply_ms_avg=_ratio(n["first_bot_reply_ms_sum"], n["first_bot_replies"]),
        first_human_reply_ms_avg=_ratio(n["first_human_reply_ms_sum"], n["first_human_replies"]),
        prompt_tokens=n["prompt_tokens"],
        completion_tokens=n["completion_tokens"],
        cost_usd=float(s.get("cost_usd") or 0),
        ttft_p50_ms=ttft[0],
        ttft_p95_ms=ttft[1],
    )


async def metrics(
    session: AsyncSession,
    tenant_id: TenantId,
    *,
    start: date | None,
    end: date | None,
    bot_id: uuid.UUID | None,
    channel_id: uuid.UUID | None,
    group_by: GroupBy,
) -> MetricsReport:
    first, last = date_range(start, end)
    if bot_id is not None:
        await bots.get_bot(session, tenant_id, bot_id)  # another workspace's bot: 404
    if channel_id is not None:
        await channels.get_channel(session, tenant_id, channel_id)
    rows = await repo.report(
        session,
        tenant_id,
        first,
        last,
        bot_id=bot_id,
        channel_id=channel_id,
        group_by=group_by,
    )  # one statement: sums, percentiles and pending marks (at least the total row)
    total = rows[-1]
    pending_days, pending_since = int(total["pending_days"]), total["pending_since"]
    return MetricsReport(
        start=first,
        end=last,
        group_by=group_by,
        bot_id=bot_id,
        channel_id=channel_id,
        rows=[_row(str(r["key"]), r, (r["ttft_p50"], r["ttft_p95"])) for r in rows[:-1]],
        total=_row("total", total, (total["ttft_p50"], total["ttft_p95"])),
        pending_days=pending_days,
        pending_since=pending_since,
    )


async def models(
    session: AsyncSession,
    tenant_id: TenantId,
    *,
    start: date | None,
    end: date | None,
    bot_id: uuid.UUID | None,
    channel_id: uuid.UUID | None,
) -> ModelsReport:
    first, last = date_range(start, end)
    if bot_id is not None:
        await bots.get_bot(session, tenant_id, bot_id)
    if channel_id is not None:
        await channels.get_channel(session, tenant_id, channel_id)
    rows = await repo.models(session, tenant_id, first, last, bot_id=bot_id, channel_id=channel_id)
    return ModelsReport(start=first, end=last, rows=[ModelRow.model_validate(r) for r in rows])


def to_csv(rows: list[BaseModel], columns: list[str]) -> str:
    """The rows as CSV with `columns` as the header (the JSON row's field names)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: ("" if v is None else v) for k, v in row.model_dump(mode="json").items()}
        )
    return out.getvalue()


def metrics_csv(report: MetricsReport) -> str:
    return to_csv([*report.rows], list(MetricsRow.model_fields))


def models_csv(report: ModelsReport) -> str:
    return to_csv([*report.rows], list(ModelRow.model_fields))
