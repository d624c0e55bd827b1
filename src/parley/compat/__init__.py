"""The OpenAI-compatible API: any OpenAI client library talks to a workspace's bots."""
