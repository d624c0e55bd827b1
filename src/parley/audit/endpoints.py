"""`/v1/tenants/{tenant_id}/audit-log`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from parley.audit import service
from parley.audit.service import AuditEntryOut
from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Forbidden, NotFound, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/audit-log",
    tags=["audit"],
    responses=merge_responses(NotFound, Forbidden),
)

Auditor = Annotated[TenantScope, tenant_access("admin", "admin")]


class ChainCheck(BaseModel):
    intact: bool
    broken_seqs: list[int]


@router.get("", response_model=Page[AuditEntryOut], summary="Configuration changes, newest first")
async def list_audit_log(
    scope: Auditor,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[AuditEntryOut]:
    return await service.list_entries(scope.session, scope.tenant_id, cursor, limit)


@router.get("/verify", response_model=ChainCheck, summary="Check the hash chain for tampering")
async def verify_audit_log(scope: Auditor) -> ChainCheck:
    broken = await service.verify_chain(scope.session, scope.tenant_id)
    return ChainCheck(intact=not broken, broken_seqs=broken)
