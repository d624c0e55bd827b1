"""`/v1/tenants/{tenant_id}/analytics`: metrics (JSON or CSV with the same columns)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status

from parley.analytics import gaps, service
from parley.analytics.schemas import (
    GapAnswerIn,
    GapAnswerOut,
    GapsReport,
    GroupBy,
    MetricsReport,
    ModelsReport,
)
from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Conflict, Forbidden, NotFound, Unprocessable, merge_responses
from parley.kit.runtime import get_runtime

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/analytics",
    tags=["analytics"],
    responses=merge_responses(NotFound, Forbidden, Unprocessable),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "conversations:read")]
Editor = Annotated[TenantScope, tenant_access("editor", "knowledge:write")]
Start = Annotated[
    date | None, Query(description="First day (UTC), inclusive; default 29 days before end.")
]
End = Annotated[date | None, Query(description="Last day (UTC), inclusive; default today.")]
Format = Annotated[Literal["json", "csv"], Query(description="`csv`: the rows, same columns.")]
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "The report (JSON, or CSV rows)"}
}


@router.get(
    "/metrics",
    response_model=MetricsReport,
    summary="Conversations, answers, handoffs, feedback, reply times, tokens and latency",
    responses=CSV,
)
async def metrics(
    scope: Reader,
    start: Start = None,
    end: End = None,
    bot_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    group_by: GroupBy = "day",
    format: Format = "json",
) -> MetricsReport | Response:
    report = await service.metrics(
        scope.session,
        scope.tenant_id,
        start=start,
        end=end,
        bot_id=bot_id,
        channel_id=channel_id,
        group_by=group_by,
    )
    if format == "csv":
        return Response(service.metrics_csv(report), media_type="text/csv; charset=utf-8")
    return report


@router.get(
    "/models",
    response_model=ModelsReport,
    summary="Turns, tokens and cost per day by provider and model",
    responses=CSV,
)
async def models(
    scope: Reader,
    start: Start = None,
    end: End = None,
    bot_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    format: Format = "json",
) -> ModelsReport | Response:
    report = await service.models(
        scope.session, scope.tenant_id, start=start, end=end, bot_id=bot_id, channel_id=channel_id
    )
    if format == "csv":
        return Response(service.models_csv(report), media_type="text/csv; charset=utf-8")
    return report


@router.get(
    "/gaps",
    response_model=GapsReport,
    summary="Questions the bot could not answer, grouped by meaning, most asked first",
)
async def list_gaps(
    request: Request,
    scope: Reader,
    bot_id: uuid.UUID,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> GapsReport:
    return await gaps.list_gaps(
        scope.session, get_runtime(request), scope.tenant_id, bot_id, days=days, limit=limit
    )


@router.post(
    "/gaps/{gap_id}/answer",
    response_model=GapAnswerOut,
    status_code=status.HTTP_201_CREATED,
    summary="Answer a gap: an FAQ entry in the chosen source, re-indexed; the gap is closed",
    responses=merge_responses(Conflict),
)
async def answer_gap(
    request: Request, scope: Editor, gap_id: uuid.UUID, body: GapAnswerIn
) -> GapAnswerOut:
    return await gaps.answer_gap(
        scope.session, get_runtime(request), scope.tenant_id, scope.principal, gap_id, body
    )
