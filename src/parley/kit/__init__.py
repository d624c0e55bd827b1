"""Shared infrastructure with no business rules."""
