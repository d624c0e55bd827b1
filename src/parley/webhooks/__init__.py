"""Outbound tenant webhooks: endpoints, signed deliveries, retries, circuit breaker, DLQ."""
