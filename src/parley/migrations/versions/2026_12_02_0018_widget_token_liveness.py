"""Widget tokens are checked against the database on every widget route, inside the statement
each route already sends (issue 15, decision 0019).

- `channels.token_epoch`: a widget token carries the epoch of its channel when it was issued;
  removing an origin from the allowlist moves the epoch on, so every live token of the channel
  stops working at once (the widget takes a new session on its next 401).
- `parley_widget_live(tenant, conversation, epoch)`: raises `PA403` when the workspace is
  suspended, `PA410` when the conversation (and so its channel, which cascades) is gone, and
  `PA401` when the epoch is not the channel's. A NULL epoch (the OpenAI-compatible API, whose
  caller is an API key) skips the epoch check only.
- `parley_chat_send` and `parley_chat_history` take the token's epoch and call it first, so a
  send still costs one statement and a history page one statement (SPEC P2/P3). A send to a
  deleted channel's conversation was a foreign-key violation (a 500) before.

Revision ID: 0018_widget_token_liveness
Revises: 0016_search_plans
Create Date: 2026-12-02
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import bind_tenant_sql, execute_script, grant

revision: str = "0018_widget_token_liveness"
down_revision: str | None = "0017_ingest_error_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_send_path = importlib.import_module("parley.migrations.versions.2026_12_01_0010_send_path")
_quiet = importlib.import_module("parley.migrations.versions.2026_12_01_0013_quiet_async_send")

OLD_SEND_ARGS = str(_send_path.SEND_ARGS)
OLD_HISTORY_ARGS = str(_send_path.HISTORY_ARGS)
SEND_ARGS = OLD_SEND_ARGS + ", integer"
HISTORY_ARGS = OLD_HISTORY_ARGS + ", integer"
LIVE_ARGS = "uuid, uuid, integer"

LIVE = f"""
CREATE FUNCTION parley_widget_live(p_tenant uuid, p_conversation uuid, p_epoch integer)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_status text;
    v_epoch integer;
BEGIN
    {bind_tenant_sql("p_tenant")}
    SELECT status INTO v_status FROM tenants WHERE id = p_tenant;
    IF v_status IS DISTINCT FROM 'active' THEN
        RAISE EXCEPTION 'tenant_suspended' USING ERRCODE = 'PA403';
    END IF;
    SELECT ch.token_epoch INTO v_epoch
    FROM conversations cv
    JOIN channels ch ON ch.tenant_id = cv.tenant_id AND ch.id = cv.channel_id
    WHERE cv.tenant_id = p_tenant AND cv.id = p_conversation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'conversation_gone' USING ERRCODE = 'PA410';
    END IF;
    IF p_epoch IS NOT NULL AND v_epoch <> p_epoch THEN
        RAISE EXCEPTION 'token_revoked' USING ERRCODE = 'PA401';
    END IF;
END
$fn$;
"""

_OLD_STATUS = """    SELECT status INTO v_status FROM tenants WHERE id = p_tenant;
    IF v_status IS DISTINCT FROM 'active' THEN
        RETURN jsonb_build_object('outcome', 'suspended');
    END IF;
"""
_LIVE_CALL = """    -- Suspended workspace, deleted channel, revoked token: raised.
    PERFORM parley_widget_live(p_tenant, p_conversation, p_epoch);
"""
_JOB_COMMENT = "-- the job's entrypoint (asynchronous send) or NULL (the caller runs the turn)"
_OLD_SEND_HEAD = f"    p_job text  {_JOB_COMMENT}\n)"
_NEW_SEND_HEAD = (
    f"    p_job text,  {_JOB_COMMENT}\n"
    "    p_epoch integer  -- the widget token's channel epoch; NULL for API-key callers\n)"
)
_OLD_HISTORY_HEAD = "p_tenant uuid, p_conversation uuid, p_before uuid, p_limit integer\n)"
_NEW_HISTORY_HEAD = (
    "p_tenant uuid, p_conversation uuid, p_before uuid, p_limit integer,\n    p_epoch integer\n)"
)
_OLD_HISTORY_BIND = bind_tenant_sql("p_tenant") + "\n    SELECT coalesce"
_NEW_HISTORY_BIND = (
    "PERFORM parley_widget_live(p_tenant, p_conversation, p_epoch);\n    SELECT coalesce"
)


def _replace(body: str, old: str, new: str) -> str:
    if old not in body:
        raise RuntimeError(f"the send path SQL changed shape; update 0018 ({old[:40]!r})")
    return body.replace(old, new)


def _send() -> str:
    body = str(_quiet._send_0010()).replace(_quiet._ANCHOR, _quiet._QUIET)
    body = _replace(body, "CREATE OR REPLACE FUNCTION", "CREATE FUNCTION")
    body = _replace(body, _OLD_SEND_HEAD, _NEW_SEND_HEAD)
    return _replace(body, _OLD_STATUS, _LIVE_CALL)


def _history() -> str:
    body = _replace(str(_send_path.HISTORY), _OLD_HISTORY_HEAD, _NEW_HISTORY_HEAD)
    return _replace(body, _OLD_HISTORY_BIND, _NEW_HISTORY_BIND)


def upgrade() -> None:
    op.add_column(
        "channels",
        sa.Column("token_epoch", sa.Integer(), server_default="0", nullable=False),
    )
    execute_script(LIVE)
    op.execute(f"DROP FUNCTION parley_chat_send({OLD_SEND_ARGS})")
    op.execute(f"DROP FUNCTION parley_chat_history({OLD_HISTORY_ARGS})")
    execute_script(_send())
    execute_script(_history())
    for fn in (
        f"parley_widget_live({LIVE_ARGS})",
        f"parley_chat_send({SEND_ARGS})",
        f"parley_chat_history({HISTORY_ARGS})",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION {fn}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION parley_chat_history({HISTORY_ARGS})")
    op.execute(f"DROP FUNCTION parley_chat_send({SEND_ARGS})")
    op.execute(f"DROP FUNCTION parley_widget_live({LIVE_ARGS})")
    execute_script(_quiet._send_0010().replace(_quiet._ANCHOR, _quiet._QUIET))
    execute_script(str(_send_path.HISTORY))
    for fn in (f"parley_chat_send({OLD_SEND_ARGS})", f"parley_chat_history({OLD_HISTORY_ARGS})"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION {fn}")
    op.drop_column("channels", "token_epoch")
