"""Provider adapters. Each turns a `TurnRequest` into a stream of `TextDelta` then `Usage`."""
