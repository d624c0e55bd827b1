"""Imports every feature's `tasks.py` so their jobs are registered with the worker."""

from parley.analytics import tasks as analytics_tasks
from parley.auth import tasks as auth_tasks
from parley.channels import tasks as channel_tasks
from parley.conversations import tasks as conversation_tasks
from parley.knowledge import tasks as knowledge_tasks
from parley.lifecycle import tasks as lifecycle_tasks
from parley.usage import tasks as usage_tasks
from parley.webhooks import tasks as webhooks_tasks

__all__ = [
    "analytics_tasks",
    "auth_tasks",
    "channel_tasks",
    "conversation_tasks",
    "knowledge_tasks",
    "lifecycle_tasks",
    "usage_tasks",
    "webhooks_tasks",
]
