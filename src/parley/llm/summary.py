"""Rolling summary of a long conversation.

History that fits the budget goes to the model verbatim. Turns that fall out of it are
condensed — one line per message, first sentence first, capped — into a summary stored on the
conversation with the id of the last message it covers, so each message is condensed once and
the summary is reused, not recomputed, on every later turn. The condensation is extractive (no
model call, no cost, deterministic); the summary is capped, oldest lines dropped first.
"""

from __future__ import annotations

import re

LINE_CHARS = 160
SUMMARY_CHARS = 2_000
_SENTENCE = re.compile(r"(.+?[.!?])(\s|$)")


def condense(role: str, content: str) -> str:
    text = " ".join(content.split())
    m = _SENTENCE.match(text)
    first = m.group(1) if m else text
    if len(first) > LINE_CHARS:
        first = first[: LINE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    who = "Visitor" if role == "user" else "Assistant"
    return f"- {who}: {first}"


def extend(summary: str | None, dropped: list[tuple[str, str]]) -> str:
    lines = (summary.splitlines() if summary else []) + [condense(r, c) for r, c in dropped]
    while lines and sum(len(line) + 1 for line in lines) > SUMMARY_CHARS:
        lines.pop(0)
    return "\n".join(lines)


MAX_VERBATIM_TURNS = 40


def split_history(
    turns: list[tuple[str, str]], budget_chars: int, max_turns: int = MAX_VERBATIM_TURNS
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(dropped, kept): the newest turns that fit the budget (and at most `max_turns` of them)
    are kept, in order."""
    used = 0
    keep_from = len(turns)
    for i in range(len(turns) - 1, -1, -1):
        used += len(turns[i][1])
        if used > budget_chars or len(turns) - i > max_turns:
            break
        keep_from = i
    return turns[:keep_from], turns[keep_from:]
