"""Apply a SQL source file from ``parley/sql`` inside a migration (the repeatable-migration rule).

A migration that creates or replaces a function, trigger or view names its file here instead of
carrying the text, so the file under ``src/parley/sql/`` is the one definition a reader needs.
"""

from __future__ import annotations

from importlib import resources

from alembic import op


def read_sql(name: str) -> str:
    """The text of ``parley/sql/<name>`` (for example ``functions/parley_chat_send.sql``)."""
    return resources.files("parley.sql").joinpath(name).read_text(encoding="utf-8")


def apply_sql(name: str) -> None:
    """Execute ``parley/sql/<name>`` in the running migration's transaction."""
    op.execute(read_sql(name))
