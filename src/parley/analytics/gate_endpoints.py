"""`/v1/tenants/{tenant_id}/bots/{bot_id}`: golden questions, the quality gate's mode, and
publishing a version through the gate (analytics sits above bots and knowledge, so the publish
route lives here rather than in `bots.endpoints`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from parley.analytics import quality_gate as gate
from parley.analytics.quality_gate import (
    GoldenQuestionIn,
    GoldenQuestionOut,
    GoldenQuestionPatch,
    QualityGateSettings,
    QualityGateSettingsOut,
)
from parley.auth.dependencies import TenantScope, tenant_access
from parley.bots.schemas import VersionOut
from parley.kit.errors import Conflict, Forbidden, NotFound, Unprocessable, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from parley.kit.runtime import get_runtime

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/bots/{bot_id}",
    tags=["bots"],
    responses=merge_responses(NotFound, Forbidden),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "bots:read")]
Writer = Annotated[TenantScope, tenant_access("editor", "bots:write")]


@router.post(
    "/golden-questions",
    response_model=GoldenQuestionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a golden question the quality gate checks on publish",
    responses=merge_responses(Conflict, Unprocessable),
)
async def create_golden_question(
    scope: Writer, bot_id: uuid.UUID, body: GoldenQuestionIn
) -> GoldenQuestionOut:
    return await gate.create_question(scope.session, scope.tenant_id, scope.principal, bot_id, body)


@router.get(
    "/golden-questions",
    response_model=Page[GoldenQuestionOut],
    summary="List a bot's golden questions",
)
async def list_golden_questions(
    scope: Reader,
    bot_id: uuid.UUID,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[GoldenQuestionOut]:
    return await gate.list_questions(scope.session, scope.tenant_id, bot_id, cursor, limit)


@router.get(
    "/golden-questions/{question_id}",
    response_model=GoldenQuestionOut,
    summary="Get a golden question",
)
async def get_golden_question(
    scope: Reader, bot_id: uuid.UUID, question_id: uuid.UUID
) -> GoldenQuestionOut:
    return await gate.get_question(scope.session, scope.tenant_id, bot_id, question_id)


@router.patch(
    "/golden-questions/{question_id}",
    response_model=GoldenQuestionOut,
    summary="Edit a golden question",
    responses=merge_responses(Conflict, Unprocessable),
)
async def update_golden_question(
    scope: Writer, bot_id: uuid.UUID, question_id: uuid.UUID, body: GoldenQuestionPatch
) -> GoldenQuestionOut:
    return await gate.update_question(
        scope.session, scope.tenant_id, scope.principal, bot_id, question_id, body
    )


@router.delete(
    "/golden-questions/{question_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a golden question",
)
async def delete_golden_question(
    scope: Writer, bot_id: uuid.UUID, question_id: uuid.UUID
) -> Response:
    await gate.delete_question(scope.session, scope.tenant_id, scope.principal, bot_id, question_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/quality-gate",
    response_model=QualityGateSettingsOut,
    summary="The quality gate's mode (block or warn) and how many golden questions it runs",
)
async def get_quality_gate(scope: Reader, bot_id: uuid.UUID) -> QualityGateSettingsOut:
    return await gate.get_settings(scope.session, scope.tenant_id, bot_id)


@router.put(
    "/quality-gate",
    response_model=QualityGateSettingsOut,
    summary="Set the quality gate's mode: block or warn when a draft passes fewer",
)
async def put_quality_gate(
    scope: Writer, bot_id: uuid.UUID, body: QualityGateSettings
) -> QualityGateSettingsOut:
    return await gate.put_settings(scope.session, scope.tenant_id, scope.principal, bot_id, body)


@router.post(
    "/versions/{version_id}/publish",
    response_model=VersionOut,
    summary="Publish a draft through the quality gate, or an earlier version (rollback)",
    description="A draft is checked against the bot's golden questions and the published "
    "version. When it passes fewer: mode `block` answers 409 `quality_gate_failed` with both "
    "pass rates and the failing questions; mode `warn` publishes, and `quality_gate.outcome` "
    "is `warned`. The verdict is recorded on the version.",
    responses=merge_responses(Conflict),
)
async def publish_version(
    request: Request, scope: Writer, bot_id: uuid.UUID, version_id: uuid.UUID
) -> VersionOut:
    return await gate.publish(
        scope.session, get_runtime(request), scope.tenant_id, scope.principal, bot_id, version_id
    )
