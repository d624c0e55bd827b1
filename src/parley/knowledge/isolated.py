"""Extraction and chunking in a separate process that is killed when its time is up.

Parsing an upload is CPU-bound, and a hostile file can make it take minutes. Run in the worker's
own process, in a thread, it could not be stopped, and the Python-level parts (Markdown,
chunking, PDF post-processing) hold the GIL that the event loop needs, so other jobs — other
workspaces' ingestions included — would wait. Here each file is parsed in a child forked
from a forkserver (the extraction modules are imported there once, so a child starts in
milliseconds); the job waits for it without blocking the loop and kills it when the job's time
budget runs out. The child reports its result as JSON (never pickle: it has just read hostile
input), and its peak memory, which `bench/` records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from parley.kit.errors import ParleyError
from parley.knowledge.chunking import Chunk, chunk
from parley.knowledge.errors import TimeBudgetExceeded, TooManyChunks, by_code
from parley.knowledge.extract import extract

_PRELOAD = ["parley.knowledge.extract", "parley.knowledge.chunking"]


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_html_depth: int
    max_html_elements: int
    max_text_chars: int
    max_chunks: int
    chunk_tokens: int
    overlap_tokens: int


@dataclass(frozen=True)
class Extracted:
    title: str
    chunks: list[Chunk]
    peak_rss_kb: int  # the child's peak resident memory


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def check_chunk_count(chunks: list[Chunk], max_chunks: int) -> None:
    if len(chunks) > max_chunks:
        raise TooManyChunks(f"The document makes {len(chunks)} chunks; the limit is {max_chunks}.")


def _child(
    conn: Connection, data: bytes, filename: str | None, content_type: str | None, lim: Limits
) -> None:
    """Runs in the child: extract, check, chunk, send one JSON answer."""

    with contextlib.suppress(OSError):
        os.nice(5)  # the API and other jobs first, when CPUs are short
    try:
        document = extract(
            data,
            filename=filename,
            content_type=content_type,
            max_bytes=lim.max_bytes,
            max_html_depth=lim.max_html_depth,
            max_html_elements=lim.max_html_elements,
            max_text_chars=lim.max_text_chars,
        )
        chunks = chunk(document, max_tokens=lim.chunk_tokens, overlap_tokens=lim.overlap_tokens)
        check_chunk_count(chunks, lim.max_chunks)
        answer: dict[str, Any] = {
            "ok": True,
            "title": document.title,
            "chunks": [
                [c.ordinal, c.text, c.heading_path, c.page, c.token_count, c.body] for c in chunks
            ],
        }
    except ParleyError as exc:
        answer = {"ok": False, "code": exc.code, "detail": exc.detail}
    except MemoryError:
        answer = {"ok": False, "code": "document_too_large", "detail": "Out of memory."}
    answer["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send_bytes(json.dumps(answer).encode())
    conn.close()


def _wait(conn: Connection, process: Any, deadline: float) -> bytes | None:
    """Blocking (run in a thread): the child's answer, or None if it died or ran out of time."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if conn.poll(min(left, 0.5)):
            try:
                return conn.recv_bytes()
            except EOFError:
                return None
        if not process.is_alive() and not conn.poll(0):
            return None


async def extract_chunks(
    data: bytes,
    *,
    filename: str | None,
    content_type: str | None,
    limits: Limits,
    seconds: float,
) -> Extracted:
    """Extract and chunk `data` in a child process within `seconds`; raises the extraction's
    own `ParleyError`, or `TimeBudgetExceeded` (the child is killed)."""
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child, args=(send, data, filename, content_type, limits), daemon=True
    )
    deadline = time.monotonic() + seconds
    process.start()
    send.close()
    try:
        raw = await asyncio.to_thread(_wait, receive, process, deadline)
    finally:
        if process.is_alive():
            process.kill()  # also when this job is cancelled: nothing keeps running
        await asyncio.to_thread(process.join, 5)
        receive.close()
    if raw is None:
        if time.monotonic() >= deadline:
            raise TimeBudgetExceeded(f"Extraction was stopped after {seconds:.0f} s.")
        raise by_code("corrupt_file")(f"The extraction process ended ({process.exitcode}).")
    answer = json.loads(raw)
    if not answer["ok"]:  # the child's peak memory rides along (bench/ records it)
        peak = {"peak_rss_kb": int(answer["peak_rss_kb"])}
        raise by_code(str(answer["code"]))(str(answer["detail"]), extra=peak)
    chunks = [
        Chunk(ordinal=o, text=t, heading_path=list(h), page=p, token_count=n, body=b)
        for o, t, h, p, n, b in answer["chunks"]
    ]
    return Extracted(str(answer["title"]), chunks, int(answer["peak_rss_kb"]))
