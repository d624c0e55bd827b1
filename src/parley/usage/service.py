"""Month-to-date usage against the workspace's plan, and the `usage.threshold` alerts.

A check (the `usage.check_thresholds` job, queued when usage grows in a workspace that listens;
migration 0015) computes the calendar month's usage (UTC) and emits `usage.threshold` for each
metric and level (80 %, 100 %) reached, exactly once per workspace, metric, month and level:
the `emitted_events` marker is written in the same transaction as the event's deliveries and
rule actions, so a check that runs twice, or two at once, emits nothing more.

The limits are also enforced, before the work is done, by the database (migration 0025:
admission triggers, `parley_plan_admit`; see `usage.plans` and decision 0035); these alerts
announce the approach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit import sqlnames
from parley.kit.db import TenantId
from parley.settings import PlanLimits, Settings
from parley.usage import repository as repo
from parley.webhooks import events
from parley.webhooks import repository as webhooks_repo
from parley.webhooks import service as webhooks

log = structlog.get_logger(__name__)

CHECK_JOB = sqlnames.USAGE_CHECK_JOB  # the name `parley_usage_check_request` enqueues
METRICS = ("monthly_conversations", "monthly_tokens")
LEVELS = (80, 100)  # percent of the limit, in the order they are announced


def month_start(now: datetime) -> datetime:
    """00:00 UTC on the first day of `now`'s calendar month (UTC)."""
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def period_of(now: datetime) -> str:
    """The calendar month (UTC) as `YYYY-MM`."""
    return month_start(now).strftime("%Y-%m")


def reached(used: int, limit: int, percent: int) -> bool:
    return used * 100 >= limit * percent


@dataclass(frozen=True)
class Alert:
    metric: str
    threshold_percent: int
    used: int
    limit: int


def _limit(limits: PlanLimits, metric: str) -> int | None:
    value: int | None = getattr(limits, metric)
    return value


async def check_thresholds(
    session: AsyncSession, settings: Settings, tenant_id: TenantId, now: datetime | None = None
) -> list[Alert]:
    """Emit `usage.threshold` for every level the month's usage has reached and that was not
    announced yet, in the caller's transaction; returns what was emitted."""
    now = now or datetime.now(UTC)
    plan = await repo.tenant_plan(session, tenant_id)
    if plan is None:
        return []
    limits = settings.plan_limits(plan)
    period = period_of(now)
    subjects = {
        (metric, level): events.usage_threshold_subject(metric, period, level)
        for metric in METRICS
        if _limit(limits, metric) is not None
        for level in LEVELS
    }
    if not subjects:
        return []  # an unlimited plan
    done = await webhooks_repo.emitted_among(
        session, tenant_id, events.USAGE_THRESHOLD, list(subjects.values())
    )
    open_metrics = {metric for (metric, _), s in subjects.items() if s not in done}
    if not open_metrics:
        return []  # every level of this month announced already: no counting
    conversations, tokens = await repo.month_usage(
        session,
        tenant_id,
        month_start(now),
        conversations="monthly_conversations" in open_metrics,
        tokens="monthly_tokens" in open_metrics,
    )
    used_by = {"monthly_conversations": conversations, "monthly_tokens": tokens}
    emitted: list[Alert] = []
    for metric in METRICS:
        used, limit = used_by[metric], _limit(limits, metric)
        if metric not in open_metrics or used is None or limit is None:
            continue
        for level in LEVELS:
            subject = subjects[(metric, level)]
            if subject in done or not reached(used, limit, level):
                continue
            if not await webhooks_repo.mark_emitted(
                session, tenant_id, events.USAGE_THRESHOLD, subject
            ):
                continue  # a concurrent check announced it first
            await webhooks.emit(
                session,
                tenant_id,
                events.USAGE_THRESHOLD,
                events.usage_threshold(
                    metric=metric,
                    period=period,
                    threshold_percent=level,
                    used=used,
                    limit=limit,
                    plan=plan,
                ),
            )
            emitted.append(Alert(metric, level, used, limit))
            log.info(
                "usage.threshold_reached",
                tenant_id=str(tenant_id),
                metric=metric,
                period=period,
                threshold_percent=level,
            )
    return emitted
