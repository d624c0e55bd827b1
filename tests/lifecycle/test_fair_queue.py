"""Fairness between workspaces in the job queue: a workspace's first job is dequeued ahead of
another workspace's backlog, whichever path enqueued it. (The timing is benchmark P15.)"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from parley.kit.db import request_transaction
from parley.kit.jobs import enqueue

JOB = "test.fair"


async def test_a_workspaces_first_job_runs_ahead_of_anothers_backlog(
    app: Any, admin_conn: asyncpg.Connection
) -> None:
    db = app.state.runtime.db
    noisy, quiet = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        async with request_transaction(db) as session:
            for n in range(35):
                await enqueue(session, JOB, {"tenant_id": noisy, "n": n})
        async with request_transaction(db) as session:
            first = await enqueue(session, JOB, {"tenant_id": quiet})
            cron = await enqueue(session, JOB, {})  # no workspace: priority untouched
        rows = await admin_conn.fetch(
            "SELECT id, priority, fair_tenant, payload FROM pgqueuer WHERE entrypoint = $1 "
            "ORDER BY priority DESC, id",  # pgqueuer's dequeue order
            JOB,
        )
        prio = {
            json.loads(r["payload"]).get("n", "quiet" if r["id"] == first else "cron"): r[
                "priority"
            ]
            for r in rows
        }
        assert [prio[n] for n in (0, 9, 10, 19, 20, 34)] == [0, 0, -1, -1, -2, -3]
        assert prio["quiet"] == 0
        assert prio["cron"] == 0
        order = [r["id"] for r in rows]
        assert order.index(first) < 12  # behind at most the noisy workspace's first 10
        assert {str(r["fair_tenant"]) for r in rows if r["id"] not in (first, cron)} == {noisy}

        # A retry put back in the queue is ranked again by the workspace's backlog.
        await admin_conn.execute(
            "UPDATE pgqueuer SET status = 'picked' WHERE entrypoint = $1 AND id = $2", JOB, first
        )
        for _ in range(40):
            async with request_transaction(db) as session:
                await enqueue(session, JOB, {"tenant_id": quiet})
        await admin_conn.execute("UPDATE pgqueuer SET status = 'queued' WHERE id = $1", first)
        assert await admin_conn.fetchval("SELECT priority FROM pgqueuer WHERE id = $1", first) == -4
    finally:
        await admin_conn.execute("DELETE FROM pgqueuer WHERE entrypoint = $1", JOB)
