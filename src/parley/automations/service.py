"""Automation rules: CRUD (audited) and evaluation when an event is emitted.

Evaluation runs inside `webhooks.service.emit`, in the caller's transaction, so a rule's tag or
handoff request commits (or rolls back) together with the event that triggered it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.automations import repository as repo
from parley.automations.schemas import (
    Action,
    CallWebhook,
    Condition,
    RequestHandoff,
    RuleCreate,
    RuleOut,
    RuleUpdate,
    TagConversation,
)
from parley.kit.db import TenantId
from parley.kit.errors import NotFound
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, page_by_id
from parley.models import AutomationRule

log = structlog.get_logger(__name__)

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_conditions: TypeAdapter[Condition] = TypeAdapter(Condition)
_actions: TypeAdapter[Action] = TypeAdapter(Action)


class RuleNotFound(NotFound):
    code = "automation_not_found"
    title = "Automation rule not found"


class WebhookForRuleNotFound(NotFound):
    code = "webhook_not_found"
    title = "The rule's webhook does not exist in this workspace"


def _out(row: AutomationRule) -> RuleOut:
    return RuleOut(
        id=row.id,
        name=row.name,
        event=row.event,
        condition=_conditions.validate_python(row.condition),
        action=_actions.validate_python(row.action),
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _check_action(session: AsyncSession, tenant_id: TenantId, action: Action) -> None:
    # An id in a body is checked like one in a path: another tenant's webhook does not exist.
    if isinstance(action, CallWebhook) and (
        not await repo.webhook_exists(session, tenant_id, action.webhook_id)
    ):
        raise WebhookForRuleNotFound()


async def create(
    session: AsyncSession, tenant_id: TenantId, body: RuleCreate, *, actor: str
) -> RuleOut:
    await _check_action(session, tenant_id, body.action)
    row = AutomationRule(
        tenant_id=tenant_id,
        id=new_id(),
        name=body.name.strip(),
        event=body.event,
        condition=body.condition.model_dump(mode="json"),
        action=body.action.model_dump(mode="json"),
        enabled=body.enabled,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    out = _out(row)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="automation.created",
        target_type="automation",
        target_id=row.id,
        after=out.model_dump(mode="json"),
    )
    return out


async def get(session: AsyncSession, tenant_id: TenantId, rule_id: uuid.UUID) -> RuleOut:
    row = await repo.rule(session, tenant_id, rule_id)
    if row is None:
        raise RuleNotFound()
    return _out(row)


async def list_rules(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[RuleOut]:
    rows = await repo.list_rules(session, tenant_id, after=after_id(cursor), limit=limit + 1)
    return page_by_id(rows, limit, _out, lambda r: r.id)


async def update(
    session: AsyncSession, tenant_id: TenantId, rule_id: uuid.UUID, body: RuleUpdate, *, actor: str
) -> RuleOut:
    row = await repo.rule(session, tenant_id, rule_id)
    if row is None:
        raise RuleNotFound()
    before = _out(row).model_dump(mode="json")
    if body.action is not None:
        await _check_action(session, tenant_id, body.action)
        row.action = body.action.model_dump(mode="json")
    if body.condition is not None:
        row.condition = body.condition.model_dump(mode="json")
    if body.name is not None:
        row.name = body.name.strip()
    if body.event is not None:
        row.event = body.event
    if body.enabled is not None:
        row.enabled = body.enabled
    row.updated_at = datetime.now(UTC)
    await session.flush()
    out = _out(row)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="automation.updated",
        target_type="automation",
        target_id=row.id,
        before=before,
        after=out.model_dump(mode="json"),
    )
    return out


async def delete(
    session: AsyncSession, tenant_id: TenantId, rule_id: uuid.UUID, *, actor: str
) -> None:
    row = await repo.rule(session, tenant_id, rule_id)
    if row is None:
        raise RuleNotFound()
    before = _out(row).model_dump(mode="json")
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="automation.deleted",
        target_type="automation",
        target_id=rule_id,
        before=before,
    )


# --- evaluation ---------------------------------------------------------------------------


def matches(condition: Condition, data: dict[str, Any]) -> bool:
    """Whether an event's data satisfies a condition. Message conditions look at the message
    the event is about: visitor messages for the text ones, bot replies for the fallback one."""
    if condition.type == "always":
        return True
    role = data.get("role")
    text = data.get("text")
    if not isinstance(text, str):
        return False
    if condition.type == "message_contains":
        return role == "user" and condition.value.casefold() in text.casefold()
    if condition.type == "visitor_left_email":
        return role == "user" and EMAIL.search(text) is not None
    return role == "assistant" and bool(data.get("fallback"))


@dataclass
class Outcome:
    """What the matching rules asked for that `emit` itself carries out."""

    webhook_ids: list[uuid.UUID] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


async def apply(
    session: AsyncSession,
    tenant_id: TenantId,
    data: dict[str, Any],
    rules: list[tuple[uuid.UUID, dict[str, Any], dict[str, Any]]],
) -> Outcome:
    outcome = Outcome()
    conversation = data.get("conversation_id")
    conversation_id = uuid.UUID(str(conversation)) if conversation else None
    for rule_id, raw_condition, raw_action in rules:
        if not matches(_conditions.validate_python(raw_condition), data):
            continue
        action = _actions.validate_python(raw_action)
        log.info(
            "automation.matched", tenant_id=str(tenant_id), rule_id=str(rule_id), action=action.type
        )
        if isinstance(action, CallWebhook):
            outcome.webhook_ids.append(action.webhook_id)
        elif isinstance(action, TagConversation) and conversation_id is not None:
            await repo.add_tag(session, tenant_id, conversation_id, action.tag)
        elif (
            isinstance(action, RequestHandoff)
            and conversation_id is not None
            and await repo.request_handoff(session, tenant_id, conversation_id)
        ):
            outcome.events.append(
                (
                    "handoff.requested",
                    {
                        "conversation_id": str(conversation_id),
                        "reason": "automation",
                        "rule_id": str(rule_id),
                    },
                )
            )
    return outcome
