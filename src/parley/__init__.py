"""Parley: a self-hostable, multi-tenant platform for AI chat assistants."""

__version__ = "0.1.0"
