"""Apply a SQL source file from ``parley/sql`` inside a migration (the repeatable-migration rule).

A migration that creates or replaces a function, trigger or view names its file here instead of
carrying the text, so the file under ``src/parley/sql/`` is the one definition a reader needs
(decision 0029). Each application is recorded in ``parley_sql_sources`` (name, SHA-256 of the
text), so a test can tell a file edited without a migration that re-applies it from the
database at head.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import execute_script

KINDS = ("functions", "views", "triggers")  # the order a full application follows
NAME = re.compile(r"^(functions|views|triggers)/[a-z][a-z0-9_]*\.sql$")
SOURCES_TABLE = "parley_sql_sources"

# A platform table (no tenant data): what each source file's text was when a migration last
# applied it. Created here too, so a migration may apply a file whatever its place in the chain.
CREATE_SOURCES_TABLE = f"""
CREATE TABLE IF NOT EXISTS {SOURCES_TABLE} (
    name text PRIMARY KEY,
    sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def read_sql(name: str) -> str:
    """The text of ``parley/sql/<name>`` (for example ``functions/parley_chat_send.sql``)."""
    if not NAME.match(name):
        raise ValueError(f"not a SQL source name: {name!r} (want functions|views|triggers/x.sql)")
    return resources.files("parley.sql").joinpath(name).read_text(encoding="utf-8")


def digest(text: str) -> str:
    """The SHA-256 a source file's text is recorded under."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Files that exist in the database only where pgvector does (migration 0012); a database
# without it has no record of them.
PGVECTOR_ONLY = frozenset({"functions/parley_kb_nearest.sql", "functions/parley_kb_vector_leg.sql"})


def source_names(root: Traversable | None = None) -> list[str]:
    """Every source file, functions first, then views, then triggers (which need both)."""
    root = root or resources.files("parley.sql")
    names: list[str] = []
    for kind in KINDS:
        folder = root.joinpath(kind)
        if folder.is_dir():
            names += sorted(f"{kind}/{f.name}" for f in folder.iterdir() if f.name.endswith(".sql"))
    return names


def apply_sql(name: str) -> None:
    """Execute ``parley/sql/<name>`` in the running migration's transaction and record it.

    The simple-query path (a plpgsql body is not a bind-parameter template, and a trigger file
    holds two statements)."""
    text = read_sql(name)
    execute_script(text)
    execute_script(CREATE_SOURCES_TABLE)
    op.execute(
        sa.text(
            f"INSERT INTO {SOURCES_TABLE} (name, sha256) VALUES (:name, :sha) "
            "ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()"
        ).bindparams(name=name, sha=digest(text))
    )


def forget_sql(name: str) -> None:
    """For the migration that drops a function, trigger or view and deletes its file."""
    op.execute(sa.text(f"DELETE FROM {SOURCES_TABLE} WHERE name = :name").bindparams(name=name))


def source_drift(
    recorded: Mapping[str, str], root: Traversable | None = None, *, pgvector: bool = True
) -> list[str]:
    """What differs between the source files and what the database recorded applying: one line
    per file, naming it. Empty when every file is the text a migration last applied."""
    root = root or resources.files("parley.sql")
    problems: list[str] = []
    names = source_names(root)
    for name in names:
        sha = digest(root.joinpath(name).read_text(encoding="utf-8"))
        if name not in recorded:
            if pgvector or name not in PGVECTOR_ONLY:
                problems.append(
                    f"src/parley/sql/{name}: not applied by any migration "
                    f'(add apply_sql("{name}") to a new migration)'
                )
        elif recorded[name] != sha:
            problems.append(
                f"src/parley/sql/{name}: differs from the text the database at head applied; "
                f'a new migration must apply_sql("{name}")'
            )
    for name in sorted(set(recorded) - set(names)):
        problems.append(
            f"src/parley/sql/{name}: applied by a migration but the file is gone "
            '(the migration that drops the object calls forget_sql("' + name + '"))'
        )
    return problems
