"""The operator console: server-rendered pages (htmx) over the same services as the API."""
