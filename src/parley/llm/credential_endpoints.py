"""`/v1/tenants/{tenant_id}/providers`: a workspace's own provider keys (write-only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response, status

from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Forbidden, NotFound, Unprocessable, merge_responses
from parley.kit.runtime import get_runtime
from parley.llm import credentials
from parley.llm.credentials import CredentialIn, CredentialOut, ProviderName

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/providers",
    tags=["llm"],
    responses=merge_responses(NotFound, Forbidden),
)

Admin = Annotated[TenantScope, tenant_access("admin", "admin")]


@router.put(
    "/{provider}",
    response_model=CredentialOut,
    summary="Store this workspace's key (and optional base URL) for a provider",
    responses=merge_responses(Unprocessable),
)
async def put_credential(
    request: Request, scope: Admin, provider: ProviderName, body: CredentialIn
) -> CredentialOut:
    return await credentials.put(
        scope.session,
        get_runtime(request),
        scope.tenant_id,
        provider,
        body,
        actor=scope.principal.actor,
    )


@router.get("", response_model=list[CredentialOut], summary="Providers with stored credentials")
async def list_credentials(scope: Admin) -> list[CredentialOut]:
    return await credentials.list_all(scope.session, scope.tenant_id)


@router.delete("/{provider}", status_code=status.HTTP_204_NO_CONTENT, summary="Forget a key")
async def delete_credential(scope: Admin, provider: ProviderName) -> Response:
    await credentials.delete(scope.session, scope.tenant_id, provider, actor=scope.principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
