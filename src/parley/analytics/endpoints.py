"""`/v1/tenants/{tenant_id}/analytics`: metrics (JSON or CSV with the same columns)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from parley.analytics import service
from parley.analytics.schemas import GroupBy, MetricsReport, ModelsReport
from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Forbidden, NotFound, Unprocessable, merge_responses

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/analytics",
    tags=["analytics"],
    responses=merge_responses(NotFound, Forbidden, Unprocessable),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "conversations:read")]
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
