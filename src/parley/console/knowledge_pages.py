"""`/console/w/{tenant}/knowledge…`: sources (paste text, FAQ pairs, URL, file) with their
indexing state, a source's chunks, test search with scores and trace, the quality check,
re-index and restore. Every action is the knowledge API's service call."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from parley.console import render
from parley.console.door import Viewer, member
from parley.console.endpoints import layout
from parley.console.forms import FormState, attempt, parse, read_form
from parley.kit.sse import SSE_HEADERS
from parley.knowledge import service as knowledge
from parley.knowledge.progress import progress_stream
from parley.knowledge.schemas import (
    FaqSourceIn,
    QualityCheckIn,
    SearchIn,
    TextSourceIn,
    UrlSourceIn,
)

router = APIRouter(prefix="/console/w/{tenant_id}/knowledge", include_in_schema=False)
Reader = Annotated[Viewer, member("viewer")]
Editor = Annotated[Viewer, member("editor")]
SOURCES_PARTS = {"sources": "partials/sources.html"}


def _base(viewer: Viewer) -> str:
    return f"/console/w/{viewer.tenant_id}/knowledge"


async def _page(viewer: Viewer, **extra: Any) -> dict[str, Any]:
    sources = await knowledge.list_sources(viewer.session, viewer.tenant_id, None, 100)
    extra.setdefault("form", FormState())
    extra.setdefault("empty", FormState())
    return await layout(viewer, sources=sources, **extra)


@router.get("")
async def sources(request: Request, viewer: Reader) -> Response:
    return render.page(request, "knowledge/sources.html", await _page(viewer), parts=SOURCES_PARTS)


def title_from(text: str) -> str:
    """A pasted text without a title is named after its first line (shortened)."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= 80 else first[:77].rstrip() + "…"


def faq_pairs(text: str) -> list[dict[str, str]]:
    """`Q: …` / `A: …` lines (blank lines between pairs) to FAQ pairs."""
    pairs: list[dict[str, str]] = []
    question: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("q:"):
            question = stripped[2:].strip()
        elif stripped.lower().startswith("a:") and question is not None:
            pairs.append({"question": question, "answer": stripped[2:].strip()})
            question = None
        elif stripped and pairs and question is None:
            pairs[-1]["answer"] += "\n" + stripped
    return pairs


@router.post("/add/{kind}")
async def add_source(request: Request, viewer: Editor, kind: str) -> Response:
    """Paste text (`text`), FAQ pairs (`faq`), a URL (`url`) or a file (`file`)."""
    data = await read_form(request)
    state = FormState(values=data)
    state.values["kind"] = kind
    body: Any = None
    if kind == "text":
        text = str(data.get("text", ""))
        title = str(data.get("title", "")).strip() or title_from(text)
        body = parse(TextSourceIn, {"type": "text", "title": title, "text": text}, state)
    elif kind == "faq":
        pairs = faq_pairs(str(data.get("pairs", "")))
        if not pairs:
            state.errors["pairs"] = "Write at least one pair: a line “Q: …” then a line “A: …”."
        else:
            body = parse(
                FaqSourceIn,
                {"type": "faq", "title": data.get("title") or "FAQ", "pairs": pairs},
                state,
            )
    elif kind == "url":
        body = parse(
            UrlSourceIn,
            {
                "type": "url",
                "url": str(data.get("url", "")).strip(),
                "title": data.get("title") or None,
            },
            state,
        )
    elif kind == "file":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            state.errors["file"] = "Choose a file."
        else:
            content = await upload.read()
            name, ctype = upload.filename, upload.content_type
            created = await attempt(
                viewer.session,
                state,
                lambda: knowledge.upload_source(
                    viewer.session,
                    viewer.runtime,
                    viewer.tenant_id,
                    viewer.principal,
                    data=content,
                    filename=name,
                    content_type=ctype,
                    title=str(data.get("title") or "") or None,
                ),
            )
            if created is not None:
                return render.redirect(request, _base(viewer))
    else:
        return render.page(
            request,
            "error.html",
            {"title": "Not found", "message": "Unknown kind of source."},
            status=404,
        )
    if body is not None:
        created = await attempt(
            viewer.session,
            state,
            lambda: knowledge.create_source(
                viewer.session, viewer.runtime, viewer.tenant_id, viewer.principal, body
            ),
        )
        if created is not None:
            target = (
                f"/console/w/{viewer.tenant_id}/" if data.get("back") == "home" else _base(viewer)
            )
            return render.redirect(request, target)
    return render.page(
        request, "knowledge/sources.html", await _page(viewer, form=state), status=422
    )


@router.get("/events")
async def events(request: Request, viewer: Reader) -> StreamingResponse:
    """Indexing progress, streamed: `sources` when a source's state changes, `idle` when
    nothing is waiting or indexing (the page then stops listening)."""
    stream = progress_stream(viewer.runtime, viewer.tenant_id, request.is_disconnected)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/sources/{source_id}")
async def source(request: Request, viewer: Reader, source_id: uuid.UUID) -> Response:
    found = await knowledge.get_source(viewer.session, viewer.tenant_id, source_id)
    chunks = await knowledge.list_chunks(
        viewer.session,
        viewer.tenant_id,
        source_id,
        cursor=request.query_params.get("cursor"),
        limit=50,
    )
    return render.page(
        request, "knowledge/source.html", await layout(viewer, source=found, chunks=chunks)
    )


@router.post("/sources/{source_id}/{action}")
async def source_action(
    request: Request, viewer: Editor, source_id: uuid.UUID, action: str
) -> Response:
    state = FormState()

    async def run() -> Any:
        if action == "reindex":
            return await knowledge.reindex(
                viewer.session, viewer.tenant_id, viewer.principal, source_id
            )
        if action == "restore":
            return await knowledge.restore_previous(
                viewer.session, viewer.runtime, viewer.tenant_id, viewer.principal, source_id
            )
        if action == "delete":
            await knowledge.delete_source(
                viewer.session, viewer.runtime, viewer.tenant_id, viewer.principal, source_id
            )
            return True
        return None

    if action not in ("reindex", "restore", "delete"):
        return render.page(
            request, "error.html", {"title": "Not found", "message": "Unknown action."}, status=404
        )
    done = await attempt(viewer.session, state, run)
    if done is None:
        return render.page(
            request, "error.html", {"title": "Not done", "message": state.message}, status=409
        )
    if action == "delete":
        return render.redirect(request, _base(viewer))
    return render.redirect(request, f"{_base(viewer)}/sources/{source_id}")


@router.get("/search")
async def search(request: Request, viewer: Reader) -> Response:
    query = request.query_params.get("q", "").strip()
    state = FormState(values={"q": query})
    result = None
    if query:
        body = parse(SearchIn, {"query": query}, state)
        if body is not None:
            result = await knowledge.search(viewer.session, viewer.runtime, viewer.tenant_id, body)
    return render.page(
        request,
        "knowledge/search.html",
        await layout(viewer, form=state, result=result, quality=None),
    )


@router.post("/quality")
async def quality(request: Request, viewer: Reader) -> Response:
    data = await read_form(request)
    state = FormState(values=data)
    questions = [q.strip() for q in str(data.get("questions", "")).splitlines() if q.strip()]
    body = parse(QualityCheckIn, {"questions": questions}, state)
    result = None
    if body is not None:
        result = await knowledge.quality_check(
            viewer.session, viewer.runtime, viewer.tenant_id, body
        )
    return render.page(
        request,
        "knowledge/search.html",
        await layout(viewer, form=state, result=None, quality=result),
        status=200 if result is not None else 422,
    )
