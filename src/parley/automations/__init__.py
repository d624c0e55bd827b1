"""Automation rules: on an event, when a condition holds, call a webhook, tag or hand off."""
