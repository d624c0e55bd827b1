"""Job, event and setting names shared between the SQL files and Python come from one registry
(`parley.kit.sqlnames`); this reads every `.sql` file and checks both ways (decision 0029)."""

from __future__ import annotations

import re

from parley.kit import sqlnames
from parley.migrations.sqlsource import read_sql, source_names

# A quoted dotted name: 'webhooks.emit_message', 'app.tenant_id', 'usage.check_thresholds:'.
DOTTED = re.compile(r"'([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+):?'")
# The tenant setting is kit.db's (and rls.bind_tenant_sql's) alone, as the tenancy lint enforces.
TENANT_SETTING = "app.tenant_id"
KNOWN = (
    sqlnames.SQL_JOBS
    | sqlnames.SQL_EVENTS
    | sqlnames.SQL_SETTINGS
    | sqlnames.SQL_AUDIT_ACTIONS
    | sqlnames.POSTGRES_SETTINGS
    | {TENANT_SETTING}
)


def quoted_names(texts: dict[str, str]) -> dict[str, set[str]]:
    """Each dotted name quoted in the SQL, with the files that quote it."""
    found: dict[str, set[str]] = {}
    for name, text in texts.items():
        for match in DOTTED.finditer(text):
            found.setdefault(match.group(1), set()).add(name)
    return found


def unregistered(texts: dict[str, str]) -> list[str]:
    return sorted(
        f"{name} quoted in {', '.join(sorted(files))} is not in parley.kit.sqlnames"
        for name, files in quoted_names(texts).items()
        if name not in KNOWN
    )


def _sources() -> dict[str, str]:
    return {name: read_sql(name) for name in source_names()}


def test_every_name_the_sql_quotes_is_registered() -> None:
    assert unregistered(_sources()) == []


def test_every_registered_name_is_quoted_by_some_sql_file() -> None:
    quoted = quoted_names(_sources())
    shared = (
        sqlnames.SQL_JOBS | sqlnames.SQL_EVENTS | sqlnames.SQL_SETTINGS | sqlnames.SQL_AUDIT_ACTIONS
    )
    assert sorted(shared - set(quoted)) == []
    assert quoted["webhooks.emit_message"] == {"functions/parley_enqueue_event.sql"}


def test_a_misspelt_job_name_in_sql_is_reported() -> None:
    texts = _sources()
    name = "functions/parley_enqueue_event.sql"
    texts[name] = texts[name].replace("'webhooks.emit_message'", "'webhooks.emit_messages'")
    assert unregistered(texts) == [
        f"webhooks.emit_messages quoted in {name} is not in parley.kit.sqlnames"
    ]


def test_every_job_the_sql_enqueues_has_a_handler_and_every_event_is_a_type() -> None:
    import parley.tasks  # noqa: F401  (registers the product's jobs)
    from parley.kit.jobs import REGISTRY
    from parley.webhooks.schemas import EVENT_TYPES

    assert set(REGISTRY.specs) >= sqlnames.SQL_JOBS
    assert set(EVENT_TYPES) >= sqlnames.SQL_EVENTS
