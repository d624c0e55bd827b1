"""Data lifecycle: a visitor's export and erasure, a workspace's export and deletion,
retention, and backup and restore."""
