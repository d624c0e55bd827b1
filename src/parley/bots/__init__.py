"""Bots and their immutable, versioned configuration."""
