"""The events a workspace can subscribe to (webhooks) or act on (automation rules).

One catalog below every feature package: webhooks deliver these events, automation rules match
them, and neither has to import the other to know their names.
"""

from __future__ import annotations

from typing import Literal

EventType = Literal[
    "conversation.started",
    "message.created",
    "handoff.requested",
    "conversation.assigned",
    "conversation.resolved",
    "knowledge.job.completed",
    "usage.threshold",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
