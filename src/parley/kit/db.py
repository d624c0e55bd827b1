"""Engine, sessions and the tenant context.

Tenant data is reached through exactly one door: `tenant_session()`, which opens a transaction
and runs `set_config('app.tenant_id', …, true)` before anything else. The setting is local to
the transaction, so a pooled connection can never carry one tenant's context into the next
request. `TenantId` values are only minted by the auth layer (`parley.auth.dependencies`), by
jobs replaying a tenant id our own code wrote, and by tenant creation; repositories accept
nothing else. Row-level security underneath makes a forgotten filter return nothing.
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NewType

from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import Any

    import asyncpg

TenantId = NewType("TenantId", uuid.UUID)
UserId = NewType("UserId", uuid.UUID)

KEEP_ON_ERROR = "parley.keep_on_error"
"""`session.info` flag: commit this transaction even though the request ends in an error
(e.g. a refresh-token reuse revocation that must stick while the caller gets a 401)."""

_SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant_id, true)")
_SET_USER = text("SELECT set_config('app.user_id', :user_id, true)")


@dataclass
class Database:
    """The application's engine (connected as the non-privileged app role) and session factory."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    url: str

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_database(url: str, *, pool_size: int = 20, max_overflow: int = 10) -> Database:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pessimistic ping: on asyncpg it costs three round trips (BEGIN, ping, ROLLBACK)
        # per checkout, more than a whole chat send. A connection the server closed is
        # noticed for free on checkout (below); one that dies mid-request invalidates the pool.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "parley"}},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    return Database(engine=engine, sessions=sessions, url=url)


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Hand out no connection whose socket the server already closed (a restart, an idle
    timeout): the pool then opens a fresh one. No round trip."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise exc.DisconnectionError("connection closed by the server")


async def bind_tenant(session: AsyncSession, tenant_id: TenantId) -> None:
    """Set the tenant context for the current transaction (and only it)."""
    await session.execute(_SET_TENANT, {"tenant_id": str(tenant_id)})


async def bind_user(session: AsyncSession, user_id: UserId) -> None:
    """Set the user context: lets a user read their own memberships across tenants."""
    await session.execute(_SET_USER, {"user_id": str(user_id)})


@asynccontextmanager
async def tenant_session(
    db: Database, tenant_id: TenantId, *, user_id: UserId | None = None
) -> AsyncIterator[AsyncSession]:
    """A transaction with the tenant context set; commits on success, rolls back on error."""
    async with db.sessions() as session, session.begin():
        await bind_tenant(session, tenant_id)
        if user_id is not None:
            await bind_user(session, user_id)
        yield session


@asynccontextmanager
async def single_statement(db: Database) -> AsyncIterator[AsyncConnection]:
    """A connection in autocommit for one statement that is its own transaction: no BEGIN and
    COMMIT round trips. Only for tenant SQL functions whose first statement binds the tenant
    (`migrations.rls.bind_tenant_sql`, SECURITY INVOKER so the policies apply); the caller
    passes them a `TenantId` from the door."""
    async with db.engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


@asynccontextmanager
async def driver_statement(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """`single_statement` one level down: the pooled connection's asyncpg driver itself, for a
    hot path's one statement (no SQLAlchemy compile or result processing: about 0.2 ms less
    CPU per call). Nothing has begun a transaction on it, so the statement is its own (one
    round trip) and returning the connection sends nothing. The same rule applies: only tenant
    SQL functions whose first statement binds the tenant, given a `TenantId` from the door."""
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if driver is None or driver.is_in_transaction():  # pragma: no cover - pool invariant
            raise RuntimeError("driver_statement needs an idle pooled connection")
        yield driver


@asynccontextmanager
async def platform_session(
    db: Database, *, user_id: UserId | None = None
) -> AsyncIterator[AsyncSession]:
    """A transaction with no tenant context: platform tables only (users, tenants, sessions).

    Under RLS, tenant tables read through this session are empty, which is the point.
    """
    async with db.sessions() as session, session.begin():
        if user_id is not None:
            await bind_user(session, user_id)
        yield session


@asynccontextmanager
async def request_transaction(db: Database) -> AsyncIterator[AsyncSession]:
    """The request boundary: commit on success, roll back on error unless the service flagged
    the work as `KEEP_ON_ERROR`."""
    session = db.sessions()
    try:
        await session.begin()
        try:
            yield session
        except BaseException:
            if session.info.get(KEEP_ON_ERROR):
                await session.commit()
            else:
                await session.rollback()
            raise
        await session.commit()
    finally:
        await session.close()


async def all_tenant_ids(db: Database) -> list[TenantId]:
    """Every tenant id, for operator commands and housekeeping jobs that must visit each tenant
    — each then through `tenant_session`, never around it."""
    async with platform_session(db) as session:
        rows = await session.execute(text("SELECT id FROM tenants ORDER BY id"))
        return [TenantId(row[0]) for row in rows]
