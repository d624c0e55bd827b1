"""`PARLEY_PLANS` copied into the database (`plans`), where the admission triggers read it.

The database refuses work over a limit in the transaction that would do it (decision 0035),
so it must know the limits: each process writes the table from its settings when it starts
(every process of a deployment shares one `PARLEY_PLANS`). A plan not in the table is
unlimited, as a plan `PARLEY_PLANS` does not list always was."""

from __future__ import annotations

from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.models import Plan
from parley.settings import Settings

LIMITS = (
    "monthly_conversations",
    "monthly_tokens",
    "messages_per_minute",
    "bots",
    "sources",
    "storage_bytes",
)


async def sync_plans(session: AsyncSession, settings: Settings) -> None:
    """Make `plans` equal to `PARLEY_PLANS` (rows not listed are removed), in one transaction
    serialised by an advisory lock so processes starting together do not interleave."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('plans', 0))"))
    table = {
        name: limits.model_dump(exclude_none=True) for name, limits in settings.parley_plans.items()
    }
    await session.execute(delete(Plan).where(Plan.name.not_in(list(table) or [""])))
    if not table:
        return
    stmt = insert(Plan).values([{"name": n, "limits": lim} for n, lim in table.items()])
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Plan.name],
            set_={"limits": stmt.excluded.limits, "updated_at": text("now()")},
            where=Plan.limits.is_distinct_from(stmt.excluded.limits),
        )
    )
