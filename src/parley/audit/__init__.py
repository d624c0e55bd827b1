"""The audit log of configuration changes: who, what, when, before and after."""
