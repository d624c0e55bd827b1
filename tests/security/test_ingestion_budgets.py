"""Ingestion has budgets: one workspace's hostile file cannot hold the worker.

- Each bound (HTML depth, element count, extracted text, chunks per source) stops a file with
  its own error code, before the costly work; deeply nested HTML at the upload limit is refused
  by a linear pre-scan instead of costing minutes of quadratic tree building.
- A file that is slow within those bounds is stopped by the job's time budget
  (`ingest_time_budget_exceeded`, shown in the job status), its parsing process killed; another
  workspace's upload, made while it runs, is ingested meanwhile and finishes first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from bench.p16b_ingest_budgets import docx_flood

from parley.kit.errors import ParleyError
from parley.knowledge import isolated
from parley.knowledge.errors import TextTooLarge
from parley.knowledge.extract import MAX_FILE_BYTES, extract
from tests.conftest import DatabaseUnderTest, make_settings, register
from tests.knowledge.samples import make_pdf
from tests.knowledge.test_knowledge_api import wait_job


def _limits(**overrides: int) -> isolated.Limits:
    base = {
        "max_bytes": MAX_FILE_BYTES,
        "max_html_depth": 256,
        "max_html_elements": 200_000,
        "max_text_chars": 4_000_000,
        "max_chunks": 5_000,
        "chunk_tokens": 300,
        "overlap_tokens": 50,
    }
    base.update(overrides)
    return isolated.Limits(**base)


def _at_limit(unit: str, tail: str = "") -> bytes:
    """`unit` repeated up to the upload limit (20 MiB by default)."""
    head = b"<html><body>"
    body = unit.encode() * ((MAX_FILE_BYTES - len(head) - len(tail)) // len(unit))
    return head + body + tail.encode()


@pytest.mark.parametrize(
    ("name", "data", "limits", "code"),
    [
        ("deep.html", _at_limit("<div>"), {}, "ingest_html_too_deep"),
        ("deep-sections.html", _at_limit("<section><b>"), {}, "ingest_html_too_deep"),
        ("wide.html", _at_limit("<span>x</span>"), {}, "ingest_too_many_elements"),
        ("paragraphs.html", _at_limit("<p>x"), {}, "ingest_too_many_elements"),
        ("flood.docx", docx_flood(200_001), {}, "ingest_too_many_elements"),
        ("text.txt", b"word " * 2_000_000, {}, "ingest_text_too_large"),
        ("many.md", b"# Part\n\nSome words here.\n\n" * 20_000, {"max_chunks": 100},
         "ingest_too_many_chunks"),
    ],
)  # fmt: skip
async def test_each_bound_stops_a_file_with_its_own_code(
    name: str, data: bytes, limits: dict[str, int], code: str
) -> None:
    with pytest.raises(ParleyError) as caught:
        await isolated.extract_chunks(
            data, filename=name, content_type=None, limits=_limits(**limits), seconds=60
        )
    assert caught.value.code == code, caught.value.detail


def test_a_pdf_stops_being_read_at_the_text_bound() -> None:
    """Pages are read until the text bound is crossed, not all of them first."""
    pages = [(None, f"Page {n}. " + "Refunds are paid within five days. " * 30) for n in range(40)]
    with pytest.raises(TextTooLarge, match="reached on page 3"):
        extract(make_pdf(pages), filename="big.pdf", content_type=None, max_text_chars=2_500)


async def test_a_file_within_bounds_is_extracted_in_the_child() -> None:
    html = b"<html><body><main><h1>Returns</h1><p>Within 30 days.</p></main></body></html>"
    out = await isolated.extract_chunks(
        html, filename="r.html", content_type="text/html", limits=_limits(), seconds=60
    )
    assert out.title == "Returns"
    assert "Within 30 days." in out.chunks[0].body
    assert out.peak_rss_kb > 0


async def test_the_time_budget_kills_the_parse() -> None:
    """Nesting allowed far past the default: the quadratic tree building would run for
    minutes; the child is killed when its time is up."""
    data = _at_limit("<div>")[:600_000]
    with pytest.raises(ParleyError) as caught:
        await isolated.extract_chunks(
            data,
            filename="deep.html",
            content_type=None,
            limits=_limits(max_html_depth=10_000_000),
            seconds=1.5,
        )
    assert caught.value.code == "ingest_time_budget_exceeded"


@pytest.fixture(scope="module")
async def budget_client(
    test_db: DatabaseUnderTest, data_dir: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose worker lets nested HTML through to the parser (depth limit lifted) and
    gives each job 8 s (room for B on a loaded machine), with a real job worker."""
    from parley.app import create_app, make_worker

    settings = make_settings(
        data_dir, parley_ingest_max_html_depth=10_000_000, parley_ingest_time_budget_seconds=8
    )
    app = create_app(settings, database_url=test_db.app_url)
    async with app.router.lifespan_context(app):
        worker = make_worker(app.state.runtime)
        worker.dequeue_timeout = timedelta(seconds=0.2)
        task = asyncio.create_task(worker.run())
        transport = httpx.ASGITransport(app=app, client=("192.0.2.77", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c
        worker.stop()
        await asyncio.wait_for(task, timeout=15)


async def _upload(client: httpx.AsyncClient, owner: Any, name: str, data: bytes, kind: str) -> str:
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        files={"file": (name, data, kind)},
        headers=owner.headers,
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job"]["id"])


async def test_a_hostile_file_in_one_workspace_does_not_delay_another(
    budget_client: httpx.AsyncClient,
) -> None:
    a = await register(budget_client, "budget-a")
    b = await register(budget_client, "budget-b")
    hostile = _at_limit("<div>")[:600_000]
    job_a = await _upload(budget_client, a, "deep.html", hostile, "text/html")
    for _ in range(400):  # until A's file is being parsed
        resp = await budget_client.get(
            f"/v1/tenants/{a.tenant_id}/knowledge/jobs/{job_a}", headers=a.headers
        )
        if resp.json()["status"] == "running":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("A's job never started")
    job_b = await _upload(
        budget_client, b, "faq.md", b"# Opening hours\n\nWe open at nine.\n", "text/markdown"
    )
    done_b = await wait_job(budget_client, b, job_b)
    done_a = await wait_job(budget_client, a, job_a)
    assert done_b["status"] == "succeeded", done_b
    assert done_a["status"] == "failed"
    assert done_a["error_code"] == "ingest_time_budget_exceeded"
    assert "stopped after 8 s" in done_a["error"]
    assert datetime.fromisoformat(done_b["finished_at"]) < datetime.fromisoformat(
        done_a["finished_at"]
    )
