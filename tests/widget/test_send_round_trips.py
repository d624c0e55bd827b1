"""SPEC P3: at most 3 database round trips per chat send. Counted underneath the app: every
statement SQLAlchemy sends, plus BEGIN and COMMIT/ROLLBACK for each transaction that is not
in autocommit (the asyncpg dialect sends those as statements of their own), plus every
statement the hot paths send on their own asyncpg pool (`kit.db.driver_statement`, each its
own transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from tests.conftest import create_widget, register, widget_session


@contextmanager
def round_trips(app: Any) -> Iterator[list[str]]:
    engine = app.state.runtime.db.engine.sync_engine
    trips: list[str] = []
    open_transactions: set[int] = set()

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT" and (
            id(conn) not in open_transactions
        ):
            open_transactions.add(id(conn))
            trips.append("BEGIN")
        trips.append(statement)

    def on_end(conn: Any) -> None:
        if id(conn) in open_transactions:
            open_transactions.discard(id(conn))
            trips.append("COMMIT/ROLLBACK")

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_end)
    event.listen(engine, "rollback", on_end)
    try:
        with driver_statements(app) as driver:
            yield trips
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_end)
        event.remove(engine, "rollback", on_end)
    # The workers' wake-up (`kit.jobs.WorkerNudge`) is sent by a background task after an
    # enqueue, coalesced across requests and off the request's path: it may land in whichever
    # window is open when it runs, so it is not counted as any request's round trip.
    trips.extend(q for q in driver if not q.startswith("SELECT pg_notify("))


@contextmanager
def driver_statements(app: Any) -> Iterator[list[str]]:
    """Statements sent through `driver_statement` (the hot paths' asyncpg pool)."""
    loggers = app.state.runtime.db.driver_loggers
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    loggers.append(log)
    try:
        yield sent
    finally:
        loggers.remove(log)


async def _send(client: httpx.AsyncClient, headers: dict[str, str], **extra: str) -> httpx.Response:
    return await client.post(
        "/v1/widget/messages",
        json={"content": "how many round trips?"},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex, **extra},
    )


async def test_a_chat_send_makes_at_most_three_round_trips(
    app: Any, client: httpx.AsyncClient
) -> None:
    owner = await register(client, "trips")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    assert (await _send(client, s.headers)).status_code == 201  # warm: statements prepared

    with round_trips(app) as trips:
        sent = await _send(client, s.headers)
    assert sent.status_code == 201
    assert sent.json()["reply"]["role"] == "assistant"
    # Claim + message + ledger + history in one; reply + ledger + key + activity in another.
    assert len(trips) <= 3, trips
    assert len(trips) == 2, trips

    with round_trips(app) as trips:
        streamed = await _send(client, s.headers, Accept="text/event-stream")
    assert streamed.status_code == 201
    assert "event: reply.completed" in streamed.text
    assert len(trips) == 2, trips

    with round_trips(app) as trips:
        queued = await _send(client, s.headers, Prefer="respond-async")
    assert queued.status_code == 202
    assert len(trips) == 1, trips  # store + enqueue (the job runs elsewhere)

    with round_trips(app) as trips:
        page = await client.get(
            f"/v1/widget/conversations/{s.conversation_id}/messages", headers=s.headers
        )
    assert page.status_code == 200
    assert len(page.json()["items"]) == 7
    assert len(trips) == 1, trips


async def test_the_counter_sees_transactions(app: Any, client: httpx.AsyncClient) -> None:
    """The counter itself: an ORM transaction is BEGIN, its statements and COMMIT."""
    with round_trips(app) as trips:
        owner = await register(client, "trips-orm")
    assert owner.tenant_id
    assert trips[0] == "BEGIN"
    assert "COMMIT/ROLLBACK" in trips
    assert len(trips) >= 4
