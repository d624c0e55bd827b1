"""Engine, sessions and the tenant context.

Tenant data is reached through exactly one door: `tenant_session()`, which opens a transaction
and runs `set_config('app.tenant_id', …, true)` before anything else. The setting is local to
the transaction, so a pooled connection can never carry one tenant's context into the next
request. `TenantId` values are only minted by the auth layer (`parley.auth.dependencies`), by
jobs replaying a tenant id our own code wrote, and by tenant creation; repositories accept
nothing else. Row-level security underneath makes a forgotten filter return nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NewType

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy import event, exc, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from typing import Any

    from asyncpg.connection import LoggedQuery

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
    driver_pool_size: int = 10
    # Query loggers (asyncpg `add_query_logger`) attached to every driver_statement while
    # they are listed: how tests count the round trips of a request. Empty in production.
    driver_loggers: list[Callable[[LoggedQuery], None]] = field(default_factory=list)
    _driver_pool: asyncpg.Pool | None = field(default=None, init=False, repr=False)
    _driver_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def driver_pool(self) -> asyncpg.Pool:
        """The hot paths' own asyncpg pool (`driver_statement`), opened on first use: a
        checkout from it costs a few microseconds, where SQLAlchemy's async pool costs a
        greenlet hop and its event machinery (about half a millisecond per statement)."""
        if self._driver_pool is None:
            async with self._driver_lock:
                if self._driver_pool is None:
                    dsn = make_url(self.url).set(drivername="postgresql")
                    self._driver_pool = await asyncpg.create_pool(
                        dsn.render_as_string(hide_password=False),
                        min_size=1,
                        max_size=self.driver_pool_size,
                        reset=_reset_driver,
                        server_settings={"application_name": "parley"},
                    )
        return self._driver_pool

    async def dispose(self) -> None:
        if self._driver_pool is not None:
            await self._driver_pool.close()
            self._driver_pool = None
        await self.engine.dispose()


async def _reset_driver(conn: asyncpg.Connection) -> None:
    """What a connection returned to the driver pool needs: nothing, normally. Each statement
    run on it is its own transaction and sets only transaction-local settings (the tenant
    context included), so asyncpg's default reset (`RESET ALL`, `UNLISTEN *`, … — one more
    round trip per statement) has nothing to undo. A connection left inside a transaction,
    which only a bug could do, is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


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
        # A failed statement's parameters (bot instructions, messages) never reach the
        # exception text, and so never a log line (issue 15).
        hide_parameters=True,
        connect_args={"server_settings": {"application_name": "parley"}},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    return Database(
        engine=engine, sessions=sessions, url=url, driver_pool_size=max(2, pool_size // 2)
    )


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
async def driver_statement(db: Database) -> AsyncIterator[PoolConnectionProxy[Any]]:
    """An asyncpg connection from the hot paths' own pool, for one statement that is its own
    transaction (autocommit: no BEGIN and COMMIT round trips, and nothing to send when the
    connection goes back). Only for tenant SQL functions whose first statement binds the
    tenant (`migrations.rls.bind_tenant_sql`, SECURITY INVOKER so the policies apply); the
    caller passes them a `TenantId` from the door."""
    pool = await db.driver_pool()
    async with pool.acquire() as conn:
        if not db.driver_loggers:
            yield conn
            return
        loggers = list(db.driver_loggers)
        for logger in loggers:
            conn.add_query_logger(logger)
        try:
            yield conn
        finally:
            for logger in loggers:
                conn.remove_query_logger(logger)


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


@asynccontextmanager
async def tenant_snapshot(db: Database, tenant_id: TenantId) -> AsyncIterator[AsyncSession]:
    """A read-only REPEATABLE READ transaction with the tenant context: every statement of an
    export sees the same committed state, while writers carry on."""
    async with db.sessions() as session, session.begin():
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        await bind_tenant(session, tenant_id)
        yield session


async def existing_tenant(db: Database, tenant_id: uuid.UUID) -> TenantId | None:
    """An operator's workspace id (CLI), checked against the tenants table."""
    async with platform_session(db) as session:
        found = await session.scalar(
            text("SELECT id FROM tenants WHERE id = :id"), {"id": tenant_id}
        )
    return TenantId(found) if found is not None else None


async def tenants_due_for_deletion(db: Database) -> list[TenantId]:
    """Workspaces whose deletion grace period has ended (the deletion job visits each)."""
    async with platform_session(db) as session:
        rows = await session.execute(
            text("SELECT id FROM tenants WHERE deletion_due_at <= now() ORDER BY deletion_due_at")
        )
        return [TenantId(row[0]) for row in rows]
