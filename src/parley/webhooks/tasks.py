"""The delivery job. Its own retries are new jobs (see `delivery.py`); pgqueuer's retries only
cover infrastructure failures (the database away), after which the row's state decides.
(`message.created` for a message the SQL send path stored is `conversations.tasks`' job.)"""

from __future__ import annotations

from parley.kit.jobs import REGISTRY, JobContext
from parley.webhooks import delivery
from parley.webhooks.service import DELIVER_JOB


@REGISTRY.job(DELIVER_JOB, max_attempts=10)
async def deliver(ctx: JobContext) -> None:
    await delivery.run(ctx)
