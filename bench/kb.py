"""A real Parley database for the retrieval benchmarks (embedded PostgreSQL, built by the
migrations, the app role under RLS), and helpers to load chunks through the product's own
indexing functions (`bm25.index_version`, `vectors.index_vectors`)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from parley.kit import embedded_pg, migrate
from parley.kit.db import Database, TenantId, create_database, tenant_session
from parley.kit.jobs import asyncpg_dsn
from parley.kit.pubsub import MemoryBroker
from parley.kit.ratelimit import MemoryRateLimiter
from parley.kit.runtime import Runtime
from parley.knowledge import bm25, vectors
from parley.knowledge.embeddings import CACHE_KEY
from parley.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    """`PARLEY_BENCH_DATA`, else `shared/data` beside the clone (or beside a parent folder,
    for a git worktree nested one level deeper)."""
    if env := os.environ.get("PARLEY_BENCH_DATA"):
        return Path(env)
    for parent in ROOT.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return ROOT.parent / "shared" / "data"


DATA = _data_dir()
CACHE = Path(os.environ.get("PARLEY_BENCH_CACHE", Path.home() / ".cache" / "parley-bench"))
CFG = "english"


@dataclass
class BenchDb:
    db: Database
    admin_dsn: str  # asyncpg DSN of the owner (for bench-only baselines such as a GIN index)
    data_dir: Path

    def runtime(self, **overrides: Any) -> Runtime:
        base: dict[str, Any] = {
            "parley_data_dir": self.data_dir,
            "parley_env": "test",
            "parley_secret_keys": "bench-secret-key-" + "x" * 40,
            "parley_log_level": "warning",
            "parley_embeddings": "none",
        }
        base.update(overrides)
        settings = Settings(_env_file=None, **base)  # type: ignore[call-arg]
        # The in-process broker and limiter, as a server without Redis has: ingestion's
        # progress nudges have somewhere to go.
        return Runtime(
            settings=settings,
            db=self.db,
            keyring=None,  # type: ignore[arg-type]
            limiter=MemoryRateLimiter(),
            broker=MemoryBroker(),
            pgvector=True,
        )

    async def tenant(self, name: str) -> TenantId:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            tid = uuid.uuid4()
            slug = re.sub(r"[^a-z0-9-]", "-", name.lower())[:40] + "-" + secrets.token_hex(3)
            await conn.execute(
                "INSERT INTO tenants (id, name, slug) VALUES ($1, $2, $3)", tid, name, slug
            )
            return TenantId(tid)
        finally:
            await conn.close()

    async def admin(self, sql: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            return await conn.execute(sql, *args)
        finally:
            await conn.close()


@asynccontextmanager
async def bench_database(pool_size: int = 10) -> AsyncIterator[BenchDb]:
    with tempfile.TemporaryDirectory(prefix="parley-bench-kb-") as d:
        data_dir = Path(d)
        server = embedded_pg.tuned_server(data_dir / "pg")  # sized as the product's is
        try:
            sock = server.get_postmaster_info().socket_dir
            server_url = f"postgresql+asyncpg://postgres@/postgres?host={sock}"
            name, role, password = "parley_bench", "parley_bench_app", secrets.token_hex(12)
            conn = await asyncpg.connect(asyncpg_dsn(server_url))
            try:
                await conn.execute(
                    f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{password}'"
                )
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()
            admin_url = f"postgresql+asyncpg://postgres@/{name}?host={sock}"
            app_url = f"postgresql+asyncpg://{role}:{password}@/{name}?host={sock}"
            await asyncio.to_thread(migrate.upgrade, admin_url, app_url)
            db = create_database(app_url, pool_size=pool_size, max_overflow=0)
            try:
                yield BenchDb(db, asyncpg_dsn(admin_url), data_dir)
            finally:
                await db.dispose()
        finally:
            server.cleanup()


class CachingEmbedder:
    """The local model behind a disk cache of its vectors (keyed by text), so a re-run of a
    benchmark does not spend minutes re-embedding the same corpus. Same vectors either way."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.batch_size = 256
        self.path = CACHE / f"{re.sub(r'[^a-zA-Z0-9]+', '-', inner.model)}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as z:
                for key, row in zip(z["keys"], z["vectors"], strict=True):
                    self.vectors[str(key)] = row
        self.dirty = False

    @property
    def dims(self) -> int | None:
        return 384

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        keys = [self.key(t) for t in texts]
        missing = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}.items()
        )
        if missing:
            out = await self.inner.embed([t for _, t in missing])
            for (k, _), v in zip(missing, out, strict=True):
                self.vectors[k] = np.asarray(v, dtype=np.float32)
            self.dirty = True
        return [self.vectors[k].astype(np.float64).tolist() for k in keys]

    def save(self) -> None:
        if not self.dirty:
            return
        CACHE.mkdir(parents=True, exist_ok=True)
        keys = np.array(sorted(self.vectors))
        np.savez(self.path, keys=keys, vectors=np.stack([self.vectors[k] for k in keys]))
        self.dirty = False


def local_embedder(runtime: Runtime, *, cache: bool = True) -> Any:
    from parley.knowledge.embeddings.local import LocalEmbedder

    inner = LocalEmbedder(runtime.settings.parley_embedding_model)
    embedder = CachingEmbedder(inner) if cache else inner
    runtime.clients[CACHE_KEY] = embedder
    return embedder


@dataclass
class Chunk:
    heading: str
    text: str


async def load_source(
    bench: BenchDb,
    tenant_id: TenantId,
    title: str,
    chunks: list[Chunk],
    *,
    embedder: Any | None,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """One ready source with its chunks at version 1, indexed by the product's functions."""
    source_id = uuid.uuid4()
    ids = [uuid.uuid4() for _ in chunks]
    async with tenant_session(bench.db, tenant_id) as s:
        raw = await s.connection()
        dbapi = (await raw.get_raw_connection()).driver_connection
        assert dbapi is not None
        await dbapi.execute(
            "INSERT INTO kb_sources (tenant_id, id, type, title, status, active_version) "
            "VALUES ($1, $2, 'text', $3, 'ready', 1)",
            tenant_id,
            source_id,
            title[:300],
        )
        # COPY is refused under row-level security: one INSERT … SELECT FROM unnest instead.
        await dbapi.execute(
            "INSERT INTO kb_chunks (tenant_id, id, source_id, index_version, ordinal, text,"
            " heading, token_count)"
            " SELECT $1, c.id, $2, 1, c.ordinal, c.text, c.heading, c.tokens"
            " FROM unnest($3::uuid[], $4::int[], $5::text[], $6::text[], $7::int[])"
            " AS c(id, ordinal, text, heading, tokens)",
            tenant_id,
            source_id,
            ids,
            list(range(len(chunks))),
            [c.text for c in chunks],
            [c.heading for c in chunks],
            [len(c.text.split()) for c in chunks],
        )
        await bm25.index_version(s, tenant_id, source_id, 1, cfg=CFG)
        if embedder is not None:
            await vectors.index_vectors(s, embedder, tenant_id, source_id, 1)
    return source_id, ids


def window_chunks(title: str, text: str, *, size: int, overlap: int) -> list[Chunk]:
    """A simple word window (the benchmark's stand-in for the product's chunker)."""
    words = text.split()
    if len(words) <= size:
        return [Chunk(title, text)]
    out: list[Chunk] = []
    step = size - overlap
    for start in range(0, len(words), step):
        out.append(Chunk(title, " ".join(words[start : start + size])))
        if start + size >= len(words):
            break
    return out
