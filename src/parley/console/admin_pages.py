"""`/console/admin` for platform admins: workspaces (suspend, reactivate, plan), the job queue
and failed jobs (re-run). The admin API's service calls, with its actor naming."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response

from parley.admin import service as admin
from parley.admin.schemas import PlanUpdate
from parley.console import render
from parley.console.door import Viewer, signed_in
from parley.console.endpoints import layout
from parley.console.forms import FormState, attempt, read_form, submit

router = APIRouter(prefix="/console/admin", include_in_schema=False)
PlatformAdmin = Annotated[Viewer, signed_in(platform_admin=True)]


def _actor(viewer: Viewer) -> str:
    return f"platform_admin:{viewer.user_id}"


@router.get("")
async def overview(request: Request, viewer: PlatformAdmin) -> Response:
    tenants = await admin.list_tenants(viewer.session, request.query_params.get("cursor"), 50, None)
    queue = await admin.queue_state(viewer.session)
    failed = await admin.failed_jobs(viewer.session, 50)
    plans = sorted(viewer.runtime.settings.parley_plans)
    context = await layout(
        viewer, tenants=tenants, queue=queue, failed=failed, plans=plans, form=FormState()
    )
    return render.page(request, "admin/overview.html", context)


@router.post("/tenants/{tenant_id}/{action}")
async def tenant_action(
    request: Request, viewer: PlatformAdmin, tenant_id: uuid.UUID, action: str
) -> Response:
    state = FormState()
    if action in ("suspend", "reactivate"):
        status = "suspended" if action == "suspend" else "active"
        done = await attempt(
            viewer.session,
            state,
            lambda: admin.set_status(viewer.session, tenant_id, status, actor=_actor(viewer)),
        )
    elif action == "plan":
        done = await submit(
            viewer.session,
            state,
            PlanUpdate,
            {"plan": (await read_form(request)).get("plan")},
            lambda body: admin.set_plan(viewer.session, tenant_id, body.plan, actor=_actor(viewer)),
        )
    else:
        return render.page(
            request, "error.html", {"title": "Not found", "message": "No such action."}, status=404
        )
    if done is None:
        message = state.message or next(iter(state.errors.values()), "Not done.")
        return render.page(
            request, "error.html", {"title": "Not done", "message": message}, status=422
        )
    return render.redirect(request, "/console/admin")


@router.post("/jobs/{job_id}/requeue")
async def requeue(request: Request, viewer: PlatformAdmin, job_id: int) -> Response:
    state = FormState()
    done = await attempt(viewer.session, state, lambda: admin.requeue(viewer.session, job_id))
    if done is None:
        return render.page(
            request, "error.html", {"title": "Not done", "message": state.message}, status=404
        )
    return render.redirect(request, "/console/admin")
