"""The one error every storage adapter raises for a key with nothing under it."""

from __future__ import annotations


class MissingObject(LookupError):
    """No stored object under that key (every adapter raises this one)."""
