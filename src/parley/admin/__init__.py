"""Platform administration: tenants, plans, queue state."""
