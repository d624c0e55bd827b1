"""Channels: where a bot answers (the web widget today; Telegram and webhooks next)."""
