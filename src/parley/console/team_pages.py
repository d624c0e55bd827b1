"""`/console/w/{tenant}/team`, `/api-keys` and `/audit`: members and invitations, API keys (the
key shown once), and the audit log with the chain's verification. The tenants and audit APIs'
service calls, with their roles (admin to change anything; the audit log is for admins)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from parley.audit import service as audit
from parley.console import render
from parley.console.door import Viewer, member
from parley.console.endpoints import layout
from parley.console.forms import FormState, attempt, parse, read_form, submit
from parley.tenants import service as tenants
from parley.tenants.schemas import ApiKeyCreate, InvitationCreate, MemberUpdate
from parley.usage import controls, reports
from parley.usage.schemas import QuotaSettings

router = APIRouter(prefix="/console/w/{tenant_id}", include_in_schema=False)
Reader = Annotated[Viewer, member("viewer")]
Admin = Annotated[Viewer, member("admin")]


async def _team(viewer: Viewer, **extra: Any) -> dict[str, Any]:
    members = await tenants.list_members(viewer.session, viewer.tenant_id, None, 200)
    invitations = None
    if viewer.can("admin"):
        invitations = await tenants.list_invitations(viewer.session, viewer.tenant_id, None, 100)
    extra.setdefault("form", FormState())
    extra.setdefault("invited", None)
    return await layout(viewer, members=members.items, invitations=invitations, **extra)


@router.get("/team")
async def team(request: Request, viewer: Reader) -> Response:
    return render.page(request, "team/team.html", await _team(viewer))


@router.post("/team/invite")
async def invite(request: Request, viewer: Admin) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    body = parse(
        InvitationCreate, {"email": data.get("email", ""), "role": data.get("role")}, state
    )
    created = None
    if body is not None:
        ttl = viewer.runtime.settings.parley_invitation_ttl_seconds
        created = await attempt(
            viewer.session,
            state,
            lambda: tenants.invite(viewer.session, viewer.tenant_id, viewer.principal, body, ttl),
        )
    link = None
    if created is not None:
        base = str(request.base_url).rstrip("/")
        link = f"{base}/console/invitations/{created.token}"
    context = await _team(viewer, form=state if created is None else FormState(), invited=link)
    return render.page(request, "team/team.html", context, status=200 if created else 422)


@router.post("/team/invitations/{invitation_id}/revoke")
async def revoke_invitation(request: Request, viewer: Admin, invitation_id: uuid.UUID) -> Response:
    """The API's revocation: the link stops working at once (accepting it answers 404)."""
    state = FormState()

    async def revoke() -> bool:
        await tenants.revoke_invitation(
            viewer.session, viewer.tenant_id, invitation_id, actor=viewer.principal.actor
        )
        return True

    if await attempt(viewer.session, state, revoke) is None:
        context = await _team(viewer, form=state)
        return render.page(request, "team/team.html", context, status=404)
    return render.redirect(request, f"/console/w/{viewer.tenant_id}/team")


@router.post("/team/{user_id}/{action}")
async def member_action(
    request: Request, viewer: Admin, user_id: uuid.UUID, action: str
) -> Response:
    data = await read_form(request)
    state = FormState()
    if action == "role":
        body = parse(MemberUpdate, {"role": data.get("role")}, state)

        async def run() -> Any:
            assert body is not None
            return await tenants.change_role(
                viewer.session, viewer.tenant_id, viewer.principal, viewer.role, user_id, body.role
            )

        done = await attempt(viewer.session, state, run) if body is not None else None
    elif action == "remove":

        async def remove() -> bool:
            await tenants.remove_member(
                viewer.session, viewer.tenant_id, viewer.principal, viewer.role, user_id
            )
            return True

        done = await attempt(viewer.session, state, remove)
    else:
        return render.page(
            request, "error.html", {"title": "Not found", "message": "No such action."}, status=404
        )
    if done is None:
        context = await _team(viewer, form=state)
        return render.page(request, "team/team.html", context, status=422)
    return render.redirect(request, f"/console/w/{viewer.tenant_id}/team")


@router.get("/api-keys")
async def api_keys(request: Request, viewer: Admin) -> Response:
    keys = await tenants.list_api_keys(viewer.session, viewer.tenant_id, None, 100)
    context = await layout(viewer, keys=keys.items, form=FormState(), created=None)
    return render.page(request, "team/api_keys.html", context)


@router.post("/api-keys")
async def create_api_key(request: Request, viewer: Admin) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    scopes = data.get("scopes", [])
    scopes = [scopes] if isinstance(scopes, str) else scopes
    created = await submit(
        viewer.session,
        state,
        ApiKeyCreate,
        {"name": data.get("name", ""), "scopes": scopes},
        lambda body: tenants.create_api_key(
            viewer.session, viewer.tenant_id, viewer.principal, body
        ),
    )
    keys = await tenants.list_api_keys(viewer.session, viewer.tenant_id, None, 100)
    context = await layout(
        viewer, keys=keys.items, form=state if created is None else FormState(), created=created
    )
    return render.page(request, "team/api_keys.html", context, status=200 if created else 422)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(request: Request, viewer: Admin, key_id: uuid.UUID) -> Response:
    await tenants.revoke_api_key(
        viewer.session, viewer.tenant_id, key_id, actor=viewer.principal.actor
    )
    return render.redirect(request, f"/console/w/{viewer.tenant_id}/api-keys")


@router.get("/audit")
async def audit_log(request: Request, viewer: Admin) -> Response:
    page = await audit.list_entries(
        viewer.session, viewer.tenant_id, request.query_params.get("cursor"), 50
    )
    broken = None
    if request.query_params.get("verify"):
        broken = await audit.verify_chain(viewer.session, viewer.tenant_id)
    context = await layout(viewer, entries=page, broken=broken, who=await _actors(viewer))
    return render.page(request, "team/audit.html", context)


async def _actors(viewer: Viewer) -> dict[str, str]:
    """Audit actors as people read them: a member's email, a key's name (the stored actor
    stays the id, shown on hover; someone who has left, or a revoked key, shows as the id)."""
    members = await tenants.list_members(viewer.session, viewer.tenant_id, None, 200)
    keys = await tenants.list_api_keys(viewer.session, viewer.tenant_id, None, 200)
    names = {f"user:{m.user_id}": m.email for m in members.items}
    names |= {f"api_key:{k.id}": f"API key “{k.name}”" for k in keys.items}
    return names


async def _usage(viewer: Viewer, **context: Any) -> dict[str, Any]:
    """The month's report (every limit with live overages, the metered totals) and the
    message visitors see at a limit: what the API's `/usage` and `/usage/settings` give."""
    report = await reports.tenant_report(viewer.session, viewer.tenant_id, None)
    quota = await controls.quota_settings(viewer.session, viewer.tenant_id)
    context.setdefault("form", FormState(values={"quota_message": quota.quota_message or ""}))
    return await layout(viewer, report=report, quota=quota, **context)


@router.get("/usage")
async def usage_page(request: Request, viewer: Reader) -> Response:
    return render.page(request, "team/usage.html", await _usage(viewer))


@router.get("/usage.csv")
async def usage_csv(viewer: Reader) -> Response:
    """This month's metered usage as the API's CSV, for a spreadsheet."""
    report = await reports.tenant_report(viewer.session, viewer.tenant_id, None)
    return Response(
        reports.report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={
            **render.page_headers(),
            "Content-Disposition": f'attachment; filename="{reports.csv_name(report)}"',
        },
    )


@router.post("/usage/quota-message")
async def quota_message(request: Request, viewer: Admin) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    saved = await submit(
        viewer.session,
        state,
        QuotaSettings,
        {"quota_message": data.get("quota_message") or None},
        lambda body: controls.set_quota_settings(
            viewer.session, viewer.tenant_id, body, actor=viewer.principal.actor
        ),
    )
    if saved is not None:
        return render.redirect(request, f"/console/w/{viewer.tenant_id}/usage?saved=1")
    context = await _usage(viewer, form=state)
    return render.page(request, "team/usage.html", context, status=422)
