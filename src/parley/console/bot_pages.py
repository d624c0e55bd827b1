"""`/console/w/{tenant}/bots…`: list, editor (a draft beside the published version), versions,
diff, publish and roll back with confirmation, and a preview chat against the draft that shows
its sources and the retrieval trace. Every action is the bots API's service call."""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from parley.analytics import quality_gate
from parley.bots import service as bots
from parley.bots import versions
from parley.bots.schemas import BotCreate, ConfigChanges, VersionOut
from parley.console import render
from parley.console.door import Viewer, member
from parley.console.endpoints import home_page, layout
from parley.console.forms import FormState, attempt, parse, read_form, submit
from parley.console.knowledge_pages import title_from
from parley.console.messages import problem_message
from parley.kit.errors import NotFound, ParleyError
from parley.kit.runtime import get_runtime
from parley.kit.security import TokenError
from parley.kit.sse import SSE_HEADERS
from parley.knowledge import service as knowledge
from parley.knowledge.grounding import passages_for_turn
from parley.knowledge.schemas import SearchIn, TextSourceIn

router = APIRouter(prefix="/console/w/{tenant_id}/bots", include_in_schema=False)
Reader = Annotated[Viewer, member("viewer")]
Editor = Annotated[Viewer, member("editor")]
TRY_PARTS = {"try-answer": "partials/try_answer.html"}


def _base(viewer: Viewer) -> str:
    return f"/console/w/{viewer.tenant_id}/bots"


@router.get("")
async def bot_list(request: Request, viewer: Reader) -> Response:
    page = await bots.list_bots(
        viewer.session, viewer.tenant_id, request.query_params.get("cursor"), 50
    )
    return render.page(request, "bots/list.html", await layout(viewer, page=page, form=FormState()))


@router.post("")
async def create_bot(request: Request, viewer: Editor) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    # The checklist's first form also takes the bot's first knowledge (optional): one post
    # for two steps. Both bodies are validated before either is created.
    first_text = str(data.get("text", ""))
    source = None
    if first_text.strip():
        source = parse(
            TextSourceIn,
            {"type": "text", "title": title_from(first_text), "text": first_text},
            state,
        )
    created = None
    if not state.failed:
        created = await submit(
            viewer.session,
            state,
            BotCreate,
            {"name": data.get("name", "")},
            lambda body: bots.create_bot(viewer.session, viewer.tenant_id, viewer.principal, body),
        )
    if created is not None and source is not None:
        added = await attempt(
            viewer.session,
            state,
            lambda: knowledge.create_source(
                viewer.session, viewer.runtime, viewer.tenant_id, viewer.principal, source
            ),
        )
        if added is None:  # the bot exists; the text stays in the knowledge step's form
            created = None
    if created is None and data.get("back") == "home":
        return await home_page(request, viewer, state, status=422)
    if created is None:
        page = await bots.list_bots(viewer.session, viewer.tenant_id, None, 50)
        return render.page(
            request, "bots/list.html", await layout(viewer, page=page, form=state), status=422
        )
    if data.get("back") == "home":
        return render.redirect(request, f"/console/w/{viewer.tenant_id}/")
    return render.redirect(request, f"{_base(viewer)}/{created.id}")


async def _versions(viewer: Viewer, bot_id: uuid.UUID) -> list[VersionOut]:
    found: list[VersionOut] = []
    cursor = None
    while True:  # a bot has a handful of versions; pages of 100
        page = await versions.list_versions(viewer.session, viewer.tenant_id, bot_id, cursor, 100)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


async def _editor_context(viewer: Viewer, bot_id: uuid.UUID, **extra: Any) -> dict[str, Any]:
    bot = await bots.get_bot(viewer.session, viewer.tenant_id, bot_id)
    all_versions = await _versions(viewer, bot_id)
    draft = next((v for v in reversed(all_versions) if v.status == "draft"), None)
    sources = (await knowledge.list_sources(viewer.session, viewer.tenant_id, None, 100)).items
    diff = None
    if draft is not None:
        diff = await versions.diff(
            viewer.session, viewer.tenant_id, bot_id, draft.id, bot.version_id
        )
    config = draft.config if draft else bot.config
    return await layout(
        viewer,
        bot=bot,
        versions=list(reversed(all_versions)),
        draft=draft,
        config=config,
        sources=sources,
        diff=diff,
        **extra,
    )


@router.get("/{bot_id}")
async def editor(request: Request, viewer: Reader, bot_id: uuid.UUID) -> Response:
    context = await _editor_context(viewer, bot_id, form=FormState(), chat=FormState())
    return render.page(request, "bots/editor.html", context)


def changes_from_form(data: dict[str, Any]) -> dict[str, Any]:
    """The editor's fields as a `ConfigChanges` body (validated by the model, as the API's)."""

    def listed(name: str) -> list[str]:
        raw = data.get(name, "")
        return [x.strip() for x in str(raw).replace("\n", ",").split(",") if x.strip()]

    def number(name: str) -> Any:
        raw = str(data.get(name, "")).strip()
        return raw or None

    sources: Any = data.get("knowledge_source_ids", [])
    if isinstance(sources, str):
        sources = [sources] if sources else []
    theme = {
        k: str(data.get(f"theme.{k}", "")).strip() or None for k in ("color", "position", "title")
    }
    return {
        "instructions": data.get("instructions", ""),
        "provider": data.get("provider") or None,
        "model": str(data.get("model", "")).strip() or None,
        "fallback_models": listed("fallback_models"),
        "temperature": number("temperature"),
        "greeting": data.get("greeting", ""),
        "fallback_text": data.get("fallback_text", ""),
        "knowledge_source_ids": None if data.get("all_sources") == "on" else sources,
        "handoff": {
            "keywords": listed("handoff.keywords"),
            "on_no_answer": data.get("handoff.on_no_answer") == "on",
            "after_fallbacks": number("handoff.after_fallbacks"),
            "on_negative_feedback": data.get("handoff.on_negative_feedback") == "on",
            "message": data.get("handoff.message", ""),
        },
        "theme": {k: v for k, v in theme.items() if v is not None},
    }


@router.post("/{bot_id}/draft")
async def save_draft(request: Request, viewer: Editor, bot_id: uuid.UUID) -> Response:
    """Save the editor into the bot's draft (made from the published version if none)."""
    data = await read_form(request)
    state = FormState(values=data)
    body = parse(ConfigChanges, changes_from_form(data), state)
    draft_id = data.get("draft_id")
    saved = None
    if body is not None:

        async def save() -> VersionOut:
            if draft_id:
                return await versions.edit_draft(
                    viewer.session,
                    viewer.tenant_id,
                    viewer.principal,
                    bot_id,
                    uuid.UUID(str(draft_id)),
                    body,
                )
            return await versions.create_draft(
                viewer.session, viewer.tenant_id, viewer.principal, bot_id, body
            )

        saved = await attempt(viewer.session, state, save)
    if saved is None:
        context = await _editor_context(viewer, bot_id, form=state, chat=FormState())
        return render.page(request, "bots/editor.html", context, status=422)
    return render.redirect(request, f"{_base(viewer)}/{bot_id}?saved=1")


@router.get("/{bot_id}/versions/{version_id}/diff")
async def diff_page(
    request: Request, viewer: Reader, bot_id: uuid.UUID, version_id: uuid.UUID
) -> Response:
    bot = await bots.get_bot(viewer.session, viewer.tenant_id, bot_id)
    against = request.query_params.get("against")
    against_id = uuid.UUID(against) if against else bot.version_id
    version = await versions.get_version(viewer.session, viewer.tenant_id, bot_id, version_id)
    other = await versions.get_version(viewer.session, viewer.tenant_id, bot_id, against_id)
    diff = await versions.diff(viewer.session, viewer.tenant_id, bot_id, version_id, against_id)
    context = await layout(viewer, bot=bot, version=version, other=other, diff=diff)
    return render.page(request, "bots/diff.html", context)


@router.get("/{bot_id}/versions/{version_id}/publish")
async def confirm_publish(
    request: Request, viewer: Editor, bot_id: uuid.UUID, version_id: uuid.UUID
) -> Response:
    bot = await bots.get_bot(viewer.session, viewer.tenant_id, bot_id)
    version = await versions.get_version(viewer.session, viewer.tenant_id, bot_id, version_id)
    diff = await versions.diff(viewer.session, viewer.tenant_id, bot_id, version_id, bot.version_id)
    context = await layout(
        viewer, bot=bot, version=version, other=None, diff=diff, confirm=True, form=FormState()
    )
    return render.page(request, "bots/diff.html", context)


@router.post("/{bot_id}/versions/{version_id}/publish")
async def publish(
    request: Request, viewer: Editor, bot_id: uuid.UUID, version_id: uuid.UUID
) -> Response:
    state = FormState()
    done = await attempt(
        viewer.session,
        state,
        lambda: quality_gate.publish(  # through the quality gate, as the API's route
            viewer.session,
            get_runtime(request),
            viewer.tenant_id,
            viewer.principal,
            bot_id,
            version_id,
        ),
    )
    if done is None:
        return render.page(
            request, "error.html", {"title": "Not published", "message": state.message}, status=409
        )
    return render.redirect(request, f"{_base(viewer)}/{bot_id}?published={done.number}")


PREVIEW_AUDIENCE = "parley:console-preview"
PREVIEW_TTL = 120
PREVIEW_TYPE = "preview"


def sse_html(event: str, markup: str) -> bytes:
    """An SSE event whose data is HTML for the page (htmx's SSE extension swaps it in)."""
    lines = [f"event: {event}", *(f"data: {line}" for line in markup.splitlines() or [""])]
    return ("\n".join(lines) + "\n\n").encode()


@router.post("/{bot_id}/try")
async def try_bot(request: Request, viewer: Editor, bot_id: uuid.UUID) -> Response:
    """Ask a version (the draft from the editor, the published one from the checklist). From
    htmx the answer streams (a short-lived signed ticket names the question for the stream);
    a plain form post gets the whole answer at once."""
    data = await read_form(request)
    state = FormState(values=data)
    question = str(data.get("question", "")).strip()[:4000]
    if not question:
        state.errors["question"] = "Type a question."
        return render.page(
            request,
            "bots/try.html",
            await layout(viewer, form=state, answer=None, stream_url=None),
            parts=TRY_PARTS,
            status=422,
        )
    bot = await bots.get_bot(viewer.session, viewer.tenant_id, bot_id)
    version_id = uuid.UUID(str(data["version_id"])) if data.get("version_id") else bot.version_id
    if render.is_htmx(request):
        ticket, _ = viewer.runtime.keyring.issue(
            subject=str(viewer.user_id),
            audience=PREVIEW_AUDIENCE,
            token_type=PREVIEW_TYPE,
            ttl_seconds=PREVIEW_TTL,
            claims={
                "tid": str(viewer.tenant_id),
                "bot": str(bot_id),
                "v": str(version_id),
                "q": question,
            },
        )
        url = f"{_base(viewer)}/{bot_id}/try/stream?{urlencode({'t': ticket})}"
        context = await layout(viewer, form=state, answer=None, stream_url=url, question=question)
        return render.page(request, "bots/try.html", context, parts=TRY_PARTS)
    version, passages, search = await _grounding(viewer, bot_id, version_id, question)
    reply = await attempt(
        viewer.session,
        state,
        lambda: versions.preview(
            viewer.session,
            viewer.runtime,
            viewer.tenant_id,
            bot_id,
            version.id,
            versions.PreviewChat(content=question),
            actor=viewer.principal.actor,
            passages=passages,
        ),
    )
    context = await layout(
        viewer,
        form=state,
        answer=reply,
        question=question,
        search=search,
        used=passages,
        stream_url=None,
    )
    return render.page(
        request, "bots/try.html", context, parts=TRY_PARTS, status=200 if reply else 422
    )


async def _grounding(
    viewer: Viewer, bot_id: uuid.UUID, version_id: uuid.UUID, question: str
) -> tuple[VersionOut, list[Any], Any]:
    """The passages a real turn would get (same thresholds; the retrieval log is written as for
    a turn), and the raw search beside them for the scores and the trace."""
    version = await versions.get_version(viewer.session, viewer.tenant_id, bot_id, version_id)
    passages = await passages_for_turn(
        viewer.runtime,
        viewer.tenant_id,
        config=version.config,
        query=question[:2000],
        bot_id=bot_id,
        bot_version_id=version.id,
        conversation_id=None,
        message_id=None,
        operation_id=None,
    )
    search = await knowledge.search(
        viewer.session,
        viewer.runtime,
        viewer.tenant_id,
        SearchIn(query=question[:2000], k=version.config.retrieval.top_k, bot_id=bot_id),
    )
    return version, passages, search


@router.get("/{bot_id}/try/stream")
async def try_stream(
    request: Request, viewer: Editor, bot_id: uuid.UUID, t: str
) -> StreamingResponse:
    """The preview's answer as the model writes it (SSE: `delta` text, then `sources` with the
    passages, scores and trace, then `done`)."""
    try:
        claims = viewer.runtime.keyring.verify(
            t, audience=PREVIEW_AUDIENCE, token_type=PREVIEW_TYPE
        )
    except TokenError as exc:
        raise NotFound("This preview expired; ask again.") from exc
    if (
        claims["sub"] != str(viewer.user_id)
        or claims["tid"] != str(viewer.tenant_id)
        or claims["bot"] != str(bot_id)
    ):
        raise NotFound("This preview is not yours.")
    question = str(claims["q"])
    version, passages, search = await _grounding(
        viewer, bot_id, uuid.UUID(str(claims["v"])), question
    )
    plan = await versions.plan_preview(
        viewer.session,
        viewer.runtime,
        viewer.tenant_id,
        bot_id,
        version.id,
        versions.PreviewChat(content=question),
        passages,
    )
    sources = render.environment().get_template("partials/try_sources.html")
    runtime, tenant_id, actor = viewer.runtime, viewer.tenant_id, viewer.principal.actor

    async def events() -> AsyncIterator[bytes]:
        try:
            async for text in versions.stream_preview(runtime, tenant_id, plan, actor=actor):
                yield sse_html("delta", html.escape(text))
        except ParleyError as exc:
            yield sse_html(
                "delta", '<span class="error">' + html.escape(problem_message(exc)) + "</span>"
            )
        yield sse_html("sources", sources.render(used=passages, search=search, plan=plan))
        yield sse_html("done", "")

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
