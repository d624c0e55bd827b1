"""One model, many callers: concurrent `embed()` calls (several ingestion jobs at once, and the
queries of live chats) are merged into the model's batches.

A local model embeds 128 short texts in far less than 128 times the time of one, and it runs
one batch at a time anyway (`LocalEmbedder` holds a lock: torch already uses every core). So
while a batch runs, the requests that arrive wait together and go as the next batch, up to
`max_texts`; a request larger than that goes on its own. One-text requests (a chat's query)
go first, so a visitor waits for at most the batch in flight, not a queue of documents.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.knowledge.embeddings import Embedder

MAX_TEXTS = 128


class CoalescingEmbedder:
    def __init__(self, inner: Embedder, *, max_texts: int = MAX_TEXTS) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.batch_size = max_texts  # what callers should send at once (index_vectors)
        self._pending: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        self._drainer: asyncio.Task[None] | None = None

    @property
    def dims(self) -> int | None:
        return self.inner.dims

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        if len(texts) == 1:
            self._pending.insert(sum(len(t) == 1 for t, _ in self._pending), (texts, future))
        else:
            self._pending.append((texts, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    def _next_batch(self) -> list[tuple[list[str], asyncio.Future[list[list[float]]]]]:
        batch: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        count = 0
        while self._pending and (not batch or count + len(self._pending[0][0]) <= self.batch_size):
            texts, future = self._pending.pop(0)
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
