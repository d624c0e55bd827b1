"""One model, many callers: concurrent `embed()` calls (several ingestion jobs at once, and the
queries of live chats) are merged into the model's batches.

The local model runs one batch at a time anyway (`LocalEmbedder` holds a lock: torch already
uses every core), so while a batch runs, the requests that arrive wait together and go as the
next batch, up to `max_texts`; a request larger than that goes on its own. Small documents'
few chunks then share a call instead of paying one each, and one-text requests (a chat's
query) go first, so a visitor waits for at most the batch in flight, not for a queue of
documents. Two batches are in flight, so the model is never idle waiting for the event loop.
`max_texts` is the model's own batch (32): on a CPU, larger batches do not embed
faster (the time is per token, P16) and would only make that wait longer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.knowledge.embeddings import Embedder

MAX_TEXTS = 32
IN_FLIGHT = 2
"""Batches handed to the model at once: while one runs, the next already waits at the model
(its lock), so the model never idles while the event loop gets round to the next batch."""


class CoalescingEmbedder:
    def __init__(self, inner: Embedder, *, max_texts: int = MAX_TEXTS) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.batch_size = max_texts  # what callers should send at once (index_vectors)
        # (texts, future, urgent): urgent requests wait at the front, in arrival order.
        self._pending: list[tuple[list[str], asyncio.Future[list[list[float]]], bool]] = []
        self._drainers: set[asyncio.Task[None]] = set()

    @property
    def dims(self) -> int | None:
        return self.inner.dims

    async def embed(self, texts: list[str], *, urgent: bool = False) -> list[list[float]]:
        """`urgent` (and every one-text request, a chat's query) goes ahead of the documents
        waiting, behind the urgent ones already waiting: the extractive answer's sentences
        are urgent too, a visitor waits for them."""
        if not texts:
            return []
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        if urgent or len(texts) == 1:
            ahead = sum(1 for _, _, first in self._pending if first)
            self._pending.insert(ahead, (texts, future, True))
        else:
            self._pending.append((texts, future, False))
        self._drainers = {d for d in self._drainers if not d.done()}
        if len(self._drainers) < IN_FLIGHT:
            self._drainers.add(asyncio.create_task(self._drain()))
        return await future

    def _next_batch(self) -> list[tuple[list[str], asyncio.Future[list[list[float]]]]]:
        batch: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        count = 0
        while self._pending and (not batch or count + len(self._pending[0][0]) <= self.batch_size):
            texts, future, _ = self._pending.pop(0)
            if future.done():  # its caller gave up (cancelled)
                continue
            batch.append((texts, future))
            count += len(texts)
        return batch

    async def _drain(self) -> None:
        while self._pending:
            batch = self._next_batch()
            if not batch:
                continue
            try:
                vectors = await self.inner.embed([t for texts, _ in batch for t in texts])
            except Exception as exc:  # every caller of the batch gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for texts, future in batch:
                if not future.done():
                    future.set_result(vectors[start : start + len(texts)])
                start += len(texts)
