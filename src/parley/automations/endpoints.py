"""`/v1/tenants/{tenant_id}/automations`: event + condition → action rules."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from parley.auth.dependencies import TenantScope, tenant_access
from parley.automations import service
from parley.automations.schemas import RuleCreate, RuleOut, RuleUpdate
from parley.kit.errors import Forbidden, NotFound, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/automations",
    tags=["automations"],
    responses=merge_responses(NotFound, Forbidden),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "bots:read")]
Writer = Annotated[TenantScope, tenant_access("editor", "bots:write")]


@router.post(
    "", response_model=RuleOut, status_code=status.HTTP_201_CREATED, summary="Create a rule"
)
async def create_rule(scope: Writer, body: RuleCreate) -> RuleOut:
    return await service.create(scope.session, scope.tenant_id, body, actor=scope.principal.actor)


@router.get("", response_model=Page[RuleOut], summary="List rules")
async def list_rules(
    scope: Reader,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[RuleOut]:
    return await service.list_rules(scope.session, scope.tenant_id, cursor, limit)


@router.get("/{rule_id}", response_model=RuleOut, summary="Get a rule")
async def get_rule(scope: Reader, rule_id: uuid.UUID) -> RuleOut:
    return await service.get(scope.session, scope.tenant_id, rule_id)


@router.patch("/{rule_id}", response_model=RuleOut, summary="Change a rule")
async def update_rule(scope: Writer, rule_id: uuid.UUID, body: RuleUpdate) -> RuleOut:
    return await service.update(
        scope.session, scope.tenant_id, rule_id, body, actor=scope.principal.actor
    )


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a rule")
async def delete_rule(scope: Writer, rule_id: uuid.UUID) -> Response:
    await service.delete(scope.session, scope.tenant_id, rule_id, actor=scope.principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
