"""Plain factory functions for webhook rows (used where a test needs rows in every table)."""

from __future__ import annotations

import uuid

from parley.kit.db import Database, TenantId, tenant_session
from parley.kit.ids import new_id
from parley.models import (
    AutomationRule,
    EmittedEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from parley.webhooks.events import emitted_id


async def seed_webhook_rows(db: Database, tenant_id: str) -> None:
    """One endpoint, one delivery with one logged attempt, one automation rule and one emitted
    event."""
    tid = TenantId(uuid.UUID(tenant_id))
    async with tenant_session(db, tid) as session:
        endpoint = WebhookEndpoint(
            tenant_id=tid,
            id=new_id(),
            url="https://93.184.215.14/seeded",
            events=["usage.threshold"],
            secret_encrypted="not-a-real-ciphertext",
        )
        session.add(endpoint)
        await session.flush()
        delivery = WebhookDelivery(
            tenant_id=tid,
            id=new_id(),
            endpoint_id=endpoint.id,
            event_type="usage.threshold",
            payload={"type": "usage.threshold", "timestamp": "", "data": {}},
            status="dead",
            attempt_count=1,
        )
        session.add(delivery)
        await session.flush()
        session.add(
            WebhookAttempt(
                tenant_id=tid,
                id=new_id(),
                delivery_id=delivery.id,
                attempt=1,
                status_code=500,
                latency_ms=3,
                error="HTTP 500",
                succeeded=False,
            )
        )
        session.add(
            AutomationRule(
                tenant_id=tid,
                id=new_id(),
                name="seeded",
                event="message.created",
                condition={"type": "always"},
                action={"type": "request_handoff"},
            )
        )
        subject = new_id()
        session.add(
            EmittedEvent(
                tenant_id=tid,
                id=emitted_id("message.created", subject),
                event="message.created",
                subject_id=subject,
            )
        )
