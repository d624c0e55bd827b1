"""Cost of a turn from a configurable price table (USD per million tokens).

`PARLEY_LLM_PRICES` (JSON) overrides or extends the defaults, keyed `provider:model`, e.g.
`{"openai:gpt-4o-mini": {"input": 0.15, "output": 0.6}}`. Unknown models cost 0 and are logged
once, so a missing price is visible rather than silently wrong.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache

import structlog

log = structlog.get_logger(__name__)

DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "extractive:extractive": {"input": 0.0, "output": 0.0},
    "openai:gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "openai:gpt-4o": {"input": 2.50, "output": 10.00},
    "openai:gpt-4.1-mini": {"input": 0.40, "output": 1.60},
    "anthropic:claude-3-5-haiku-latest": {"input": 0.80, "output": 4.00},
    "gemini:gemini-2.0-flash": {"input": 0.10, "output": 0.40},
}


@cache
def price_table(overrides: str | None) -> dict[str, dict[str, float]]:
    table = dict(DEFAULT_PRICES)
    if overrides:
        table.update(json.loads(overrides))
    return table


_warned: set[str] = set()


def cost_usd(
    table: dict[str, dict[str, float]], provider: str, model: str, tokens_in: int, tokens_out: int
) -> Decimal:
    key = f"{provider}:{model}"
    price = table.get(key)
    if price is None:
        if key not in _warned:
            _warned.add(key)
            log.warning("llm.price_unknown", model=key)
        return Decimal(0)
    total = Decimal(str(price["input"])) * tokens_in + Decimal(str(price["output"])) * tokens_out
    return (total / Decimal(1_000_000)).quantize(Decimal("0.000001"))
