"""`/console`: accounts (sign up, sign in, sign out, invitations, switching workspace), the home
page with the onboarding checklist, and the console's static files. Thin: each route calls the
same service as the API route that does the same thing."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import service as auth
from parley.auth.access import ACCESS_AUDIENCE, ACCESS_TYPE
from parley.auth.dependencies import limit_attempts
from parley.auth.schemas import LoginRequest, RegisterRequest
from parley.console import render
from parley.console import service as console
from parley.console import session as cookie
from parley.console.door import Viewer, anonymous, member, signed_in
from parley.console.forms import FormState, attempt, read_form, submit
from parley.kit.db import UserId
from parley.kit.errors import NotFound
from parley.kit.runtime import Runtime
from parley.tenants import joining
from parley.tenants import service as tenants

router = APIRouter(prefix="/console", include_in_schema=False)

Anonymous = Annotated[tuple[Runtime, AsyncSession], Depends(anonymous, scope="function")]
SignedIn = Annotated[Viewer, signed_in()]
Member = Annotated[Viewer, member("viewer")]


def safe_next(value: str | None) -> str | None:
    """Only a path inside the console (no scheme, no `//host`): no open redirect."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


async def layout(viewer: Viewer, **context: Any) -> dict[str, Any]:
    """What base.html needs: the user, their workspaces (the switcher), the current one."""
    me = await auth.me(viewer.session, viewer.user_id)
    current = None
    if viewer.caller is not None:
        current = next((m for m in me.memberships if m.tenant.id == viewer.tenant_id), None)
    return {"me": me, "current": current, "viewer": viewer, **context}


# --- static -----------------------------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    found = render.static_files().get(name)
    if found is None:
        raise NotFound("No such file.")
    return Response(
        found[1],
        media_type=found[0],
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


# --- accounts ---------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def entry(request: Request) -> Response:
    return RedirectResponse("/console/workspaces", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return render.page(request, "login.html", {"form": FormState(), "next": safe_next(next)})


async def _signed_in_response(
    request: Request, runtime: Runtime, access_token: str, target: str
) -> Response:
    claims = runtime.keyring.verify(access_token, audience=ACCESS_AUDIENCE, token_type=ACCESS_TYPE)
    response = render.redirect(request, target)
    cookie.issue(runtime, response, UserId(uuid.UUID(claims["sub"])), uuid.UUID(claims["sid"]))
    return response


@router.post("/login")
async def login(request: Request, door: Anonymous) -> Response:
    runtime, session = door
    data = await read_form(request)
    state = FormState(values={"email": data.get("email", "")})
    target = safe_next(data.get("next")) or "/console/workspaces"
    await limit_attempts(request, "login")
    pair = await submit(
        session,
        state,
        LoginRequest,
        {"email": data.get("email"), "password": data.get("password")},
        lambda body: auth.login(session, runtime, str(body.email), body.password),
    )
    if pair is None:
        return render.page(
            request, "login.html", {"form": state, "next": safe_next(data.get("next"))}, status=422
        )
    return await _signed_in_response(request, runtime, pair.access_token, target)


@router.get("/signup")
async def signup_form(request: Request) -> Response:
    return render.page(request, "signup.html", {"form": FormState()})


@router.post("/signup")
async def signup(request: Request, door: Anonymous) -> Response:
    runtime, session = door
    data = await read_form(request)
    state = FormState(values={k: data.get(k, "") for k in ("email", "tenant_name")})
    await limit_attempts(request, "register")
    created = await submit(
        session,
        state,
        RegisterRequest,
        {k: data.get(k) for k in ("email", "password", "tenant_name")},
        lambda body: joining.register_account(session, runtime, body),
    )
    if created is None:
        return render.page(request, "signup.html", {"form": state}, status=422)
    return await _signed_in_response(
        request, runtime, created.access_token, f"/console/w/{created.tenant.id}/"
    )


@router.post("/logout")
async def logout(request: Request, viewer: SignedIn) -> Response:
    await auth.logout(viewer.session, viewer.user_id, viewer.family, None)
    response = render.redirect(request, "/console/login")
    cookie.clear(response)
    return response


@router.get("/workspaces")
async def workspaces(request: Request, viewer: SignedIn) -> Response:
    context = await layout(viewer)
    if len(context["me"].memberships) == 1:
        # One workspace: open it, also after the (htmx-boosted) sign-in form, which arrives
        # here as an htmx request and used to stop at a list of one.
        return render.redirect(request, f"/console/w/{context['me'].memberships[0].tenant.id}/")
    return render.page(request, "workspaces.html", context)


@router.get("/go")
async def switch_workspace(viewer: SignedIn, workspace: uuid.UUID) -> Response:
    """The switcher's target: a plain GET form, so it works without JavaScript."""
    return RedirectResponse(f"/console/w/{workspace}/", status_code=303)


@router.get("/invitations/{token}")
async def invitation(request: Request, token: str) -> Response:
    if cookie.read(request.app.state.runtime, request) is None:
        return RedirectResponse(f"/console/login?next=/console/invitations/{token}", 303)
    return render.page(request, "invitation.html", {"token": token, "form": FormState()})


@router.post("/invitations/{token}")
async def accept_invitation(request: Request, viewer: SignedIn, token: str) -> Response:
    state = FormState()
    joined = await attempt(
        viewer.session,
        state,
        lambda: tenants.accept_invitation(viewer.session, viewer.user_id, token),
    )
    if joined is None:
        return render.page(request, "invitation.html", {"token": token, "form": state}, status=422)
    return render.redirect(request, f"/console/w/{joined.tenant_id}/")


# --- home -------------------------------------------------------------------------------------


@router.get("/w/{tenant_id}/")
async def home(request: Request, viewer: Member) -> Response:
    return await home_page(request, viewer, FormState())


async def home_page(
    request: Request, viewer: Viewer, form: FormState, *, status: int = 200
) -> Response:
    """The checklist (or the glance); `form` carries a failed checklist post back to it."""
    state = await console.onboarding(viewer.session, viewer.tenant_id)
    glance = await console.glance(viewer.session, viewer.tenant_id) if state.complete else None
    context = await layout(viewer, onboarding=state, glance=glance, form=form)
    context["snippet"] = snippet(request, state.widget.widget_key if state.widget else None)
    return render.page(request, "home.html", context, status=status)


def snippet(request: Request, widget_key: str | None) -> str | None:
    if widget_key is None:
        return None
    runtime = request.app.state.runtime
    base = (runtime.settings.parley_public_url or str(request.base_url)).rstrip("/")
    return (
        f'<script src="{base}/widget/v1/parley.js" data-widget-key="{widget_key}" async></script>'
    )
