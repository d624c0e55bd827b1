"""Conversations and their messages (the widget writes them; the inbox will read them)."""
