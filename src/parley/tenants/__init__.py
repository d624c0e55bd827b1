"""Tenants (workspaces), members, invitations and API keys."""
