"""`/console/w/{tenant}/analytics`: how the bots are doing, and what they could not answer.

The figures of the analytics API (`analytics.service.metrics`, by day, by channel and by bot,
for the last 7, 30 or 90 days, one bot or all), its cost by model, the day rows as CSV, and the
knowledge gaps of a bot (`analytics.gaps`) with the action that answers one: an FAQ entry
written into a chosen FAQ source, re-indexed, the gap closed. Same roles as the API: any member
reads, an editor answers a gap."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from parley.analytics import gaps as gap_service
from parley.analytics import service as analytics
from parley.analytics.schemas import GapAnswerIn, GapAnswerOut, GroupBy, MetricsReport
from parley.bots import service as bots
from parley.channels import service as channels
from parley.console import render
from parley.console.door import Viewer, member
from parley.console.endpoints import layout
from parley.console.forms import FormState, read_form, submit
from parley.knowledge import service as knowledge

router = APIRouter(prefix="/console/w/{tenant_id}", include_in_schema=False)
Reader = Annotated[Viewer, member("viewer")]
Editor = Annotated[Viewer, member("editor")]

GAPS_PARTS = {"gaps": "analytics/gaps.html"}
RANGES = (7, 30, 90)
"""The periods a person picks from (days, today included)."""


def _days(request: Request) -> int:
    raw = request.query_params.get("days", "")
    return int(raw) if raw.isdigit() and int(raw) in RANGES else 30


def _uuid(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def _span(days: int) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    return today - timedelta(days=days - 1), today


async def _metrics(
    viewer: Viewer, days: int, bot_id: uuid.UUID | None, group_by: GroupBy
) -> MetricsReport:
    start, end = _span(days)
    return await analytics.metrics(
        viewer.session,
        viewer.tenant_id,
        start=start,
        end=end,
        bot_id=bot_id,
        channel_id=None,
        group_by=group_by,
    )


async def _figures(
    viewer: Viewer, days: int, bot_id: uuid.UUID | None, several_bots: bool
) -> dict[str, Any]:
    """The figures part of the page: by day, by channel, by model, and side by side by bot
    when the whole workspace of several bots is shown."""
    start, end = _span(days)
    report = await _metrics(viewer, days, bot_id, "day")
    by_channel = await _metrics(viewer, days, bot_id, "channel")
    by_bot = await _metrics(viewer, days, None, "bot") if bot_id is None and several_bots else None
    channel_list = (await channels.list_channels(viewer.session, viewer.tenant_id, None, 200)).items
    by_model = await analytics.models(
        viewer.session, viewer.tenant_id, start=start, end=end, bot_id=bot_id, channel_id=None
    )
    return {
        "report": report,
        "channel_rows": by_channel.rows,
        "bot_rows": by_bot.rows if by_bot else [],
        "channel_names": {str(c.id): f"{c.name} ({c.type})" for c in channel_list},
        "models": by_model.rows,
        "peak": max(max((r.conversations for r in report.rows), default=0), 1),
    }


async def _context(
    viewer: Viewer,
    days: int,
    bot_id: uuid.UUID | None,
    *,
    figures: bool = True,
    with_gaps: bool = False,
    form: FormState | None = None,
    answered: GapAnswerOut | None = None,
) -> dict[str, Any]:
    """The page's context: its figures unless only the gaps section is asked for, and the
    knowledge gaps only `with_gaps` (grouping the questions costs more than the rest of the
    page, so the page loads them after itself: `/analytics/gaps`)."""
    bot_list = (await bots.list_bots(viewer.session, viewer.tenant_id, None, 100)).items
    if bot_id is not None and all(b.id != bot_id for b in bot_list):
        bot_id = None  # not a bot of this workspace: the whole workspace
    shown = await _figures(viewer, days, bot_id, len(bot_list) > 1) if figures else {}
    gap_bot = bot_id or (bot_list[0].id if bot_list else None)
    gaps = None
    faq_sources = []
    if with_gaps and gap_bot is not None:
        gaps = await gap_service.list_gaps(
            viewer.session, viewer.runtime, viewer.tenant_id, gap_bot, days=days, limit=20
        )
        if viewer.can("editor"):
            sources = await knowledge.list_sources(viewer.session, viewer.tenant_id, None, 200)
            faq_sources = [s for s in sources.items if s.type == "faq"]
    return await layout(
        viewer,
        days=days,
        ranges=RANGES,
        bots=bot_list,
        bot_names={str(b.id): b.name for b in bot_list},
        bot_id=bot_id,
        gap_bot=next((b for b in bot_list if b.id == gap_bot), None),
        gaps=gaps,
        faq_sources=faq_sources,
        form=form or FormState(),
        answered=answered,
        **shown,
    )


@router.get("/analytics")
async def analytics_page(request: Request, viewer: Reader) -> Response:
    days = _days(request)
    bot_id = _uuid(request.query_params.get("bot_id"))
    return render.page(request, "analytics/index.html", await _context(viewer, days, bot_id))


@router.get("/analytics/gaps")
async def analytics_gaps(request: Request, viewer: Reader) -> Response:
    """The gaps section: only the section for htmx (the page asks for it once shown), the
    whole page with it otherwise (no script, or a link followed)."""
    days = _days(request)
    bot_id = _uuid(request.query_params.get("bot_id"))
    figures = not render.is_htmx(request)  # the section alone needs none of the figures
    context = await _context(viewer, days, bot_id, figures=figures, with_gaps=True)
    return render.page(request, "analytics/index.html", context, parts=GAPS_PARTS)


@router.get("/analytics.csv")
async def analytics_csv(request: Request, viewer: Reader) -> Response:
    """The day rows as CSV, the API's columns (`GET …/analytics/metrics?format=csv`)."""
    bot_id = _uuid(request.query_params.get("bot_id"))
    report = await _metrics(viewer, _days(request), bot_id, "day")
    name = f"parley-analytics-{report.start.isoformat()}-{report.end.isoformat()}.csv"
    return Response(
        analytics.metrics_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={**render.page_headers(), "Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/analytics/gaps/{gap_id}/answer")
async def answer_gap(request: Request, viewer: Editor, gap_id: uuid.UUID) -> Response:
    data = await read_form(request)
    state = FormState(values={**data, "gap_id": str(gap_id)})
    days = int(data["days"]) if str(data.get("days", "")).isdigit() else 30
    fields = {
        "bot_id": data.get("bot_id") or None,
        "source_id": data.get("source_id") or None,
        "question": data.get("question") or None,
        "answer": data.get("answer", ""),
        "days": days,
    }
    done = await submit(
        viewer.session,
        state,
        GapAnswerIn,
        fields,
        lambda body: gap_service.answer_gap(
            viewer.session, viewer.runtime, viewer.tenant_id, viewer.principal, gap_id, body
        ),
    )
    bot_id = _uuid(str(data.get("bot_id", "")))
    shown = days if days in RANGES else 30
    if done is None:
        context = await _context(viewer, shown, bot_id, with_gaps=True, form=state)
        return render.page(request, "analytics/index.html", context, status=422)
    context = await _context(viewer, shown, bot_id, with_gaps=True, answered=done)
    return render.page(request, "analytics/index.html", context)
