"""An asynchronous chat send enqueues its turn without pgqueuer's per-insert NOTIFY, as channel
ingress does since 0011: a transaction that notifies holds a database-wide lock through its
commit's WAL flush, so notifying commits run one at a time. The caller wakes the workers
itself, coalesced (`kit.jobs.WorkerNudge`). See docs/decisions/0008-ingress-path.md.

`parley_chat_send` is replaced with 0010's body plus, for an asynchronous send, the
transaction-local `parley.enqueue_notify = off` that 0011's trigger guard reads; it is set
before anything is enqueued, so the `message.created` event job is quiet too.

Revision ID: 0013_quiet_async_send
Revises: 0012_retrieval_path
Create Date: 2026-12-01
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from parley.migrations.rls import execute_script

revision: str = "0013_quiet_async_send"
down_revision: str | None = "0012_retrieval_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ANCHOR = """    IF p_job IS NULL THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
"""
_QUIET = """    IF p_job IS NULL THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    ELSE
        -- No per-insert NOTIFY for the jobs this send enqueues: the caller nudges the
        -- workers after the commit (migration 0013).
        PERFORM set_config('parley.enqueue_notify', 'off', true);
    END IF;
"""


def _send_0010() -> str:
    send_path = importlib.import_module("parley.migrations.versions.2026_12_01_0010_send_path")
    body = str(send_path.SEND)
    if _ANCHOR not in body:
        raise RuntimeError("parley_chat_send in 0010 changed shape; update 0013")
    return body.replace(
        "CREATE FUNCTION parley_chat_send(", "CREATE OR REPLACE FUNCTION parley_chat_send("
    )


def upgrade() -> None:
    execute_script(_send_0010().replace(_ANCHOR, _QUIET))


def downgrade() -> None:
    execute_script(_send_0010())
