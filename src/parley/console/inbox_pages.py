"""`/console/w/{tenant}/inbox`: the three panes (list with tabs, the conversation, its context)
on the conversations and handoff API's services; the staff stream (SSE) tells the page when to
refresh the list and the open conversation."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import StreamingResponse

from parley.console import render
from parley.console.door import Viewer, member
from parley.console.endpoints import layout
from parley.console.forms import FormState, attempt, read_form
from parley.conversations import operator_reply as reply
from parley.conversations import service as conversations
from parley.conversations.events import Pending, inbox_stream
from parley.conversations.repository import ConversationFilters, searchable
from parley.kit.db import UserId
from parley.kit.errors import NotFound
from parley.kit.sse import SSE_HEADERS

router = APIRouter(prefix="/console/w/{tenant_id}/inbox", include_in_schema=False)
Reader = Annotated[Viewer, member("viewer")]
Agent = Annotated[Viewer, member("agent")]
TABS = {
    "waiting": "Waiting",
    "mine": "Mine",
    "all": "All",
    "resolved": "Resolved",
}
TAG = re.compile(r"^[^\s/][^/]{0,63}$")  # the API's path rule for a tag
PARTS = {"conv-list": "inbox/list_pane.html", "conv-pane": "inbox/conversation_pane.html"}


CHANNEL_TYPES = ("widget", "telegram", "webhook", "api")


def _tab_filters(viewer: Viewer, tab: str) -> ConversationFilters:
    if tab == "waiting":
        return ConversationFilters(handoff_status="waiting")
    if tab == "mine":
        return ConversationFilters(assignee_id=viewer.user_id)
    if tab == "resolved":
        return ConversationFilters(handoff_status="resolved")
    return ConversationFilters()


def refinements(params: Mapping[str, str]) -> dict[str, str]:
    """The list's filters beyond the tab (search words, channel, tag, unanswered,
    unassigned) as the query gave them; anything the API would refuse is dropped, so a
    hand-edited URL shows the unfiltered tab rather than an error."""
    out: dict[str, str] = {}
    q = params.get("q", "").strip()[:200]
    if q and searchable(q):
        out["q"] = q
    if params.get("channel") in CHANNEL_TYPES:
        out["channel"] = params["channel"]
    tag = params.get("tag", "").strip()
    if tag and TAG.match(tag):
        out["tag"] = tag
    for flag in ("unanswered", "unassigned"):
        if params.get(flag) == "1":
            out[flag] = "1"
    return out


def _filters(viewer: Viewer, tab: str, refined: dict[str, str]) -> ConversationFilters:
    return replace(
        _tab_filters(viewer, tab),
        q=refined.get("q"),
        channel_type=refined.get("channel"),
        tag=refined.get("tag"),
        unanswered="unanswered" in refined,
        unassigned="unassigned" in refined,
    )


async def _context(
    viewer: Viewer, tab: str, open_id: uuid.UUID | None, **extra: Any
) -> dict[str, Any]:
    tab = tab if tab in TABS else "all"
    refined = refinements(viewer.request.query_params)
    listing = await conversations.list_conversations(
        viewer.session,
        viewer.tenant_id,
        _filters(viewer, tab, refined),
        viewer.request.query_params.get("cursor"),
        30,
    )
    shown = await conversations.previews(
        viewer.session, viewer.tenant_id, [c.id for c in listing.items]
    )
    detail = transcript = None
    if open_id is not None:
        detail = await conversations.get_conversation(viewer.session, viewer.tenant_id, open_id)
        transcript = await conversations.transcript(
            viewer.session, viewer.tenant_id, open_id, None, 100
        )
    extra.setdefault("form", FormState())
    return await layout(
        viewer,
        tab=tab,
        tabs=TABS,
        listing=listing,
        previews=shown,
        detail=detail,
        transcript=transcript,
        refined=refined,
        keep="".join(f"&{urlencode({k: v})}" for k, v in refined.items()),
        channel_types=CHANNEL_TYPES,
        **extra,
    )


@router.get("")
async def inbox(
    request: Request, viewer: Reader, tab: str = "all", c: uuid.UUID | None = None
) -> Response:
    return render.page(request, "inbox/inbox.html", await _context(viewer, tab, c), parts=PARTS)


@router.get("/events")
async def events(request: Request, viewer: Reader) -> StreamingResponse:
    """The staff stream, as the API's `/inbox/events` (the page only uses the event names)."""
    stream = inbox_stream(
        viewer.runtime,
        viewer.tenant_id,
        UserId(viewer.user_id) if viewer.role != "viewer" else None,
        None,
        request.is_disconnected,
        True,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


ACTIONS = ("assign", "unassign", "handback", "resolve", "reopen", "reply", "note", "tag", "untag")


@router.post("/{conversation_id}/{action}")
async def act(
    request: Request,
    background: BackgroundTasks,
    viewer: Agent,
    conversation_id: uuid.UUID,
    action: str,
) -> Response:
    """One of the agent's actions; the same service call as the API route of the same name."""
    if action not in ACTIONS:
        raise NotFound("No such action.")
    data = await read_form(request)
    state = FormState(values=data)
    pending = Pending()
    s, t, p = viewer.session, viewer.tenant_id, viewer.principal
    text = str(data.get("body", "")).strip()

    async def run() -> Any:
        if action == "assign":
            return await conversations.assign(s, t, p, conversation_id, None, pending)
        if action in ("unassign", "handback", "resolve", "reopen"):
            return await conversations.transition(s, t, p, conversation_id, action, pending)
        if action == "reply":
            return await reply.operator_reply(s, t, p, conversation_id, text, None, pending)
        if action == "note":
            return await conversations.add_note(s, t, p, conversation_id, text)
        tag = str(data.get("tag", "")).strip()
        if action == "tag":
            return await conversations.add_tag(s, t, p, conversation_id, tag)
        return await conversations.remove_tag(s, t, p, conversation_id, tag)

    if action in ("reply", "note") and not text:
        state.errors["body"] = "Write something first."
        done = None
    elif action in ("tag", "untag") and not TAG.match(str(data.get("tag", "")).strip()):
        state.errors["tag"] = "A tag is 1 to 64 characters, without “/”."
        done = None
    else:
        done = await attempt(s, state, run)
    if done is not None:
        background.add_task(pending.flush, viewer.runtime)
    tab = str(data.get("tab", "all"))
    context = await _context(
        viewer, tab, conversation_id, form=state if done is None else FormState()
    )
    status = 200 if done is not None else 422
    return render.page(request, "inbox/inbox.html", context, parts=PARTS, status=status)
