"""Usage against plan limits (C9, the alerting part): month-to-date usage and the
`usage.threshold` alerts at 80 % and 100 %."""
