"""`/v1/tenants/{tenant_id}/llm-usage`: per-bot and per-model cost and latency."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Forbidden, NotFound, merge_responses
from parley.llm import usage
from parley.llm.usage import UsageReport

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/llm-usage",
    tags=["llm"],
    responses=merge_responses(NotFound, Forbidden),
)


@router.get(
    "", response_model=UsageReport, summary="Turns, tokens, cost and latency per bot and model"
)
async def llm_usage(
    scope: Annotated[TenantScope, tenant_access("viewer", "bots:read")],
    since: Annotated[datetime | None, Query(description="Inclusive, ISO 8601")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive, ISO 8601")] = None,
) -> UsageReport:
    return await usage.llm_usage(scope.session, scope.tenant_id, since, until)
