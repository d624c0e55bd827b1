"""Usage and plans (C9): metering (`usage_events`, written by triggers in the transaction of
the work), limits enforced before the work is done (402/429), per-visitor budgets, monthly
reports, and the `usage.threshold` alerts at 80 % and 100 %."""
