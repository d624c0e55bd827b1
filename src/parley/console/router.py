"""All of the console's routes, under `/console`."""

from __future__ import annotations

from fastapi import APIRouter

from parley.console import (
    admin_pages,
    analytics_pages,
    bot_pages,
    channel_pages,
    endpoints,
    inbox_pages,
    integration_pages,
    knowledge_pages,
    quality_pages,
    team_pages,
)

router = APIRouter()
for part in (
    endpoints,
    quality_pages,
    bot_pages,
    knowledge_pages,
    channel_pages,
    inbox_pages,
    analytics_pages,
    team_pages,
    integration_pages,
    admin_pages,
):
    router.include_router(part.router)
