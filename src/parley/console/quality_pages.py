"""`/console/w/{tenant}/bots/{bot}/golden`: a bot's golden questions and its quality gate.

The questions publishing is checked against (what a right answer cites, retrieves or says),
the gate's mode (block a draft that passes fewer than the published version, or only warn),
and "Run them now" against the published version or the draft, question by question. The
quality-gate API's service calls with its roles: any member reads, an editor changes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from parley.analytics import quality_gate as gate
from parley.analytics.quality_gate import GoldenQuestionIn, QualityGateSettings
from parley.bots import service as bots
from parley.bots import versions
from parley.bots.schemas import GateSide
from parley.console import render
from parley.console.door import Viewer, member
from parley.console.endpoints import layout
from parley.console.forms import FormState, read_form, submit
from parley.knowledge import service as knowledge

router = APIRouter(prefix="/console/w/{tenant_id}/bots/{bot_id}/golden", include_in_schema=False)
Reader = Annotated[Viewer, member("viewer")]
Editor = Annotated[Viewer, member("editor")]


async def _context(
    viewer: Viewer,
    bot_id: uuid.UUID,
    *,
    form: FormState | None = None,
    run: GateSide | None = None,
) -> dict[str, Any]:
    bot = await bots.get_bot(viewer.session, viewer.tenant_id, bot_id)
    questions = await gate.list_questions(viewer.session, viewer.tenant_id, bot_id, None, 200)
    settings = await gate.get_settings(viewer.session, viewer.tenant_id, bot_id)
    sources = (await knowledge.list_sources(viewer.session, viewer.tenant_id, None, 200)).items
    drafts = await versions.list_versions(viewer.session, viewer.tenant_id, bot_id, None, 100)
    draft = next((v for v in reversed(drafts.items) if v.status == "draft"), None)
    failing = {r.question_id: r for r in run.failing} if run else {}
    return await layout(
        viewer,
        bot=bot,
        questions=questions.items,
        settings=settings,
        sources=sources,
        titles={s.id: s.title for s in sources},
        draft=draft,
        form=form or FormState(),
        run=run,
        failing=failing,
    )


def _url(viewer: Viewer, bot_id: uuid.UUID) -> str:
    return f"/console/w/{viewer.tenant_id}/bots/{bot_id}/golden"


def _page(request: Request, context: dict[str, Any], status: int = 200) -> Response:
    return render.page(request, "bots/golden.html", context, status=status)


async def _saved(
    request: Request, viewer: Viewer, bot_id: uuid.UUID, state: FormState, done: object | None
) -> Response:
    """After a form: back to the page when the change was made, else the page again with
    the form's errors (422)."""
    if done is not None:
        return render.redirect(request, _url(viewer, bot_id))
    return _page(request, await _context(viewer, bot_id, form=state), status=422)


@router.get("")
async def golden_page(request: Request, viewer: Reader, bot_id: uuid.UUID) -> Response:
    return _page(request, await _context(viewer, bot_id))


@router.post("")
async def add_question(request: Request, viewer: Editor, bot_id: uuid.UUID) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    fields = {
        "question": data.get("question", ""),
        "expected_answer": data.get("expected_answer") or None,
        "expected_passage": data.get("expected_passage") or None,
        "expected_source_id": data.get("expected_source_id") or None,
    }
    return await _saved(
        request,
        viewer,
        bot_id,
        state,
        await submit(
            viewer.session,
            state,
            GoldenQuestionIn,
            fields,
            lambda body: gate.create_question(
                viewer.session, viewer.tenant_id, viewer.principal, bot_id, body
            ),
        ),
    )


@router.post("/{question_id}/delete")
async def delete_question(
    request: Request, viewer: Editor, bot_id: uuid.UUID, question_id: uuid.UUID
) -> Response:
    await gate.delete_question(
        viewer.session, viewer.tenant_id, viewer.principal, bot_id, question_id
    )
    return render.redirect(request, _url(viewer, bot_id))


@router.post("/mode")
async def set_mode(request: Request, viewer: Editor, bot_id: uuid.UUID) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    return await _saved(
        request,
        viewer,
        bot_id,
        state,
        await submit(
            viewer.session,
            state,
            QualityGateSettings,
            {"mode": data.get("mode")},
            lambda body: gate.put_settings(
                viewer.session, viewer.tenant_id, viewer.principal, bot_id, body
            ),
        ),
    )


@router.post("/run")
async def run_questions(request: Request, viewer: Editor, bot_id: uuid.UUID) -> Response:
    """Answer every golden question with one version (the published one unless the form names
    another of this bot's versions) and show which fail and why."""
    data = await read_form(request)
    bot = await bots.get_bot(viewer.session, viewer.tenant_id, bot_id)
    version_id = bot.version_id
    raw = str(data.get("version_id") or "")
    if raw:
        try:
            version_id = uuid.UUID(raw)
        except ValueError:
            version_id = bot.version_id
    side = await gate.check_version(
        viewer.session, viewer.runtime, viewer.tenant_id, bot_id, version_id
    )
    return _page(request, await _context(viewer, bot_id, run=side))
