"""Names that SQL and Python share: the one registry of them (decision 0029).

The SQL functions under `src/parley/sql/` enqueue jobs and name events and transaction
settings by string; the Python side registers the job handlers, delivers the events and sets
the settings. Both use the names here: Python imports them, and
`tests/db/test_sql_names.py` parses every `.sql` file and checks that each dotted name it
quotes is in this registry and that each name here is quoted by some file. A rename is then
one edit here plus one in the SQL file, and a test says when the two disagree.
"""

from __future__ import annotations

# --- jobs a SQL function enqueues by name (pgqueuer entrypoints)
EMIT_MESSAGE_JOB = "webhooks.emit_message"  # parley_enqueue_event; handled in conversations.tasks
USAGE_CHECK_JOB = "usage.check_thresholds"  # parley_usage_check_request; usage.tasks
EMIT_EVENT_JOB = "webhooks.emit_event"  # parley_operator_reply (event data inline); webhooks.tasks
DELIVER_OPERATOR_JOB = "channels.deliver_operator_message"  # parley_operator_reply; channels.tasks

SQL_JOBS = frozenset({EMIT_MESSAGE_JOB, USAGE_CHECK_JOB, EMIT_EVENT_JOB, DELIVER_OPERATOR_JOB})

# --- events (webhook/automation event types) a SQL function names
MESSAGE_CREATED = "message.created"  # parley_chat_send, parley_chat_finish
USAGE_THRESHOLD = "usage.threshold"  # parley_usage_check_request: does anyone listen?
CONVERSATION_ASSIGNED = "conversation.assigned"  # parley_operator_reply takes the conversation

SQL_EVENTS = frozenset({MESSAGE_CREATED, USAGE_THRESHOLD, CONVERSATION_ASSIGNED})

# --- audit actions a SQL function records in the hash-chained audit log
AUDIT_CONVERSATION_REPLY = "conversation.reply"  # parley_operator_reply

SQL_AUDIT_ACTIONS = frozenset({AUDIT_CONVERSATION_REPLY})

# --- transaction settings SQL reads or writes and Python sets or reads. The tenant setting the
# policies read is not here: it belongs to `kit.db` alone (the tenancy lint says so).
ACTOR_SETTING = "parley.actor"  # who changes a conversation's handler (the timeline row)
HANDOFF_REASON_SETTING = "parley.handoff_reason"  # why it changed
ENQUEUE_NOTIFY_SETTING = "parley.enqueue_notify"  # 'off': jobs enqueued without a NOTIFY

SQL_SETTINGS = frozenset({ACTOR_SETTING, HANDOFF_REASON_SETTING, ENQUEUE_NOTIFY_SETTING})

# pgvector's own settings, set by the search functions; not ours to rename.
POSTGRES_SETTINGS = frozenset({"hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples"})
