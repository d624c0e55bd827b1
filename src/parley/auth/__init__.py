"""Authentication: users, sessions, tokens, API keys, and the one door to tenant data."""
