"""LLM turns: the provider port, its adapters, and prompt assembly."""
