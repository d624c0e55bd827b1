"""Analytics: daily metrics roll-ups, knowledge gaps (docs/analytics.md)."""
