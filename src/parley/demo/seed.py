"""Seed the demo: a platform admin with a random password (printed once) and its workspace.

Runs only when the database has no users, so it never overwrites anything and never resets a
password. The widget, bot and knowledge parts of the demo arrive with those capabilities.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from parley.kit.db import UserId, request_transaction
from parley.models import User
from parley.settings import Settings

DEMO_EMAIL = "admin@parley.example.com"


@dataclass
class DemoResult:
    created: bool
    email: str
    password: str | None
    tenant_id: uuid.UUID | None

    def describe(self, base: str) -> list[str]:
        if not self.created:
            return ["  Demo: the database already has users; nothing was seeded."]
        return [
            f"  Console login: {self.email}",
            f"  Password (shown once): {self.password}",
            f"  Demo workspace id: {self.tenant_id}",
        ]


async def seed_demo(settings: Settings, app_url: str) -> DemoResult:
    from parley.app import build_runtime
    from parley.auth import service as auth_service
    from parley.tenants import service as tenants

    runtime = await build_runtime(settings, app_url)
    try:
        async with request_transaction(runtime.db) as session:
            if await session.scalar(select(func.count()).select_from(User)):
                return DemoResult(False, DEMO_EMAIL, None, None)
            password = secrets.token_urlsafe(12)
            user = await auth_service.create_user(
                session, runtime, email=DEMO_EMAIL, password=password, platform_admin=True
            )
            tenant = await tenants.create_tenant(
                session, name="Demo workspace", owner_id=UserId(user.id)
            )
            return DemoResult(True, DEMO_EMAIL, password, tenant.id)
    finally:
        await runtime.db.dispose()
