"""A backlog to one endpoint over its in-flight limit (issue 20, R1): it drains at the
endpoint's pace without a busy loop. Waiting deliveries sleep in the job queue and each
finished attempt hands its slot to the oldest one, so the number of times a delivery is put
back is bounded by the backlog, not by how long the backlog takes to drain."""

from __future__ import annotations

import httpx
import pytest

from parley.kit.metrics import REGISTRY
from tests.conftest import register
from tests.webhooks.conftest import WorkerFactory, wait_for
from tests.webhooks.helpers import deliveries, make_hook, start_conversations
from tests.webhooks.receiver import Receiver

N = 24
CAP = 2


def _outcomes(outcome: str) -> float:
    value = REGISTRY.get_sample_value("parley_webhook_deliveries_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
def slow_receiver() -> Receiver:
    r = Receiver(delay=0.5)  # the drain takes N × 0.5 s / CAP = 6 s at least
    r.start()
    yield r  # type: ignore[misc]
    r.stop()


async def test_a_backlog_over_the_in_flight_limit_drains_without_spinning(
    wh_client: httpx.AsyncClient, slow_receiver: Receiver, worker: WorkerFactory
) -> None:
    owner = await register(wh_client, "wh-backlog")
    hook = await make_hook(
        wh_client, owner, slow_receiver.url("/backlog"), ["conversation.started"]
    )
    await start_conversations(wh_client, owner, n=N)
    deferred, handed = _outcomes("deferred"), _outcomes("handed_over")

    async def drained() -> bool:
        return len(await deliveries(wh_client, owner, hook["id"], "delivered")) == N

    async with worker(parley_webhook_max_in_flight=CAP):
        await wait_for(drained, timeout=90)
    got = slow_receiver.at("/backlog")
    assert len({r.headers["webhook-id"] for r in got}) == N
    assert len(got) == N  # each once: deferring is not an attempt
    assert slow_receiver.max_in_flight <= CAP
    # Each waiting delivery was put back a few times at most (once on arrival, then when its
    # fallback wake-up found no slot free); a re-poll every 0.2–2 s, as before, put it back
    # about once per second of the drain (123 times in a run of this test against it).
    put_back = _outcomes("deferred") - deferred
    assert put_back <= 3 * N, put_back
    # Slots were handed over as attempts finished (what keeps the drain at the endpoint's pace).
    assert _outcomes("handed_over") - handed >= N // 2
