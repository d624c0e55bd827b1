"""Q1 — answer quality of the offline `extractive` provider on the demo's knowledge.

Eleven question sets of our own, each written the same way (questions a newcomer asks the demo
bot, each with a gold phrase from Parley's `docs/`, and a few that nothing in the docs
answers): the development set (`bench/data/demo_qa.json`) the selection was tuned on;
held-out set 1 (`demo_qa_heldout.json`), written before the reworked selection was first run
on it, whose misses were then read to find systematic faults (so it is no longer unseen);
held-out set 2 (`demo_qa_heldout2.json`), written after that and before anything ran on it,
whose misses were read on 3 December when the selection's parameters were swept (no change
was kept); held-out set 3 (`demo_qa_heldout3.json`), written after that by someone who had not
seen the answers, run once, and its misses read the same afternoon; held-out sets 4, 5 and 6
(`demo_qa_heldout4.json`, `…5.json`, `…6.json`), each written on 3 December by someone who
had not seen any answers: set 4 was run once and its misses read, set 5 was run once with
nothing changed (its result led to the lower coverage floor, decision 0040), set 6 was
written while that change was made and run once after it; then sentences' closeness in
meaning (the local embedding model) joined the score, weighed on all seven sets' saved
passages, and held-out set 7 (`…7.json`), written meanwhile by someone who had seen no
answers, was run once with it (47 % against 60 %) and its misses read; held-out set 8
(`…8.json`), written after the answer-shape fixes by someone who had seen no answers, was run
once (40 % against 53 %); then the answer was made to say more when no passage is a clear
answer (the sentence after the best match, a close window from elsewhere up to 110 words),
weighed on the saved passages of all nine sets, and held-out set 9 (`…9.json`), written
meanwhile by someone who had seen no answers, was run once with it (50 % against 53 %) and its
misses read; held-out set 10 (`…10.json`), written after that by someone who had seen no
answers, was run once with it (50 % against 43 %); then, with its result known, questions that
nothing is near in meaning were declined (decision 0041), which changes no answerable reply on
the saved passages of the eleven sets; then the provider's words were stemmed as retrieval's
are (Snowball, decision 0042), checked on the saved passages of the eleven sets, and held-out
set 11 (`…11.json`), written meanwhile by someone who had seen no answers, was run once with it.
The target ("at least as often as before") is judged on all the questions pooled: one set of
22–45 questions moves by a question or two between runs of the same code (retrieval ties), and
the early sets were read to find faults, so a single set's figure is reported, not judged.
The docs are ingested as the demo does (`bench.demo_corpus`: the pages `parley serve --demo`
indexes); every question goes through the product's grounding (`passages_for_turn`:
retrieval plus the relevance gate), and both the old sentence choice
(`bench/extractive_v0.py`, the code before issue 14 with its own word matching, kept only
here) and the current one
(`parley.llm.providers.extractive`) answer from the same passages in the same run. A reply
*contains the gold* when the gold phrase appears in it (case-insensitive); a question nothing
answers is *declined* when the reply is the bot's fallback text. Words exclude the `[n]`
citation marks.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

from bench import extractive_v0
from bench.demo_corpus import bench_runtime, run_worker_until_idle, upload
from bench.kb import bench_database
from bench.report import Row, Section
from parley.bots.schemas import BotConfig
from parley.kit.runtime import Runtime
from parley.knowledge.grounding import passages_for_turn
from parley.llm.base import ChatMessage, TextDelta, TurnRequest
from parley.llm.providers import extractive
from parley.llm.registry import provider_for
from parley.settings import local_embeddings_installed

DATA = Path(__file__).resolve().parent / "data"
SETS = {
    "development": DATA / "demo_qa.json",
    "held-out 1 (misses read)": DATA / "demo_qa_heldout.json",
    "held-out 2 (misses read)": DATA / "demo_qa_heldout2.json",
    "held-out 3 (misses read)": DATA / "demo_qa_heldout3.json",
    "held-out 4 (misses read)": DATA / "demo_qa_heldout4.json",
    "held-out 5 (read)": DATA / "demo_qa_heldout5.json",
    "held-out 6 (read)": DATA / "demo_qa_heldout6.json",
    "held-out 7 (read)": DATA / "demo_qa_heldout7.json",
    "held-out 8 (read)": DATA / "demo_qa_heldout8.json",
    "held-out 9 (read)": DATA / "demo_qa_heldout9.json",
    "held-out 10 (read)": DATA / "demo_qa_heldout10.json",
    "held-out 11 (run once)": DATA / "demo_qa_heldout11.json",
}
COMMAND = ".venv/bin/python -m bench q1"
_CITATION = re.compile(r"\[\d+\]")
NOTES = [
    (
        "Order of work (see the commits): held-out 1 committed, the selection reworked on the "
        "development set, held-out 1 measured (74 % against the old selection's 89 %), its "
        'misses read (filler words like "may" and the "s" of "visitor\'s" weighed as '
        "rare terms; a trimmed run-on sentence kept its first clauses rather than the one "
        "with the answer), held-out 2 committed, the faults fixed, then a run. On 3 December "
        "the length budget, the weight of a second window, the code-span limit and a "
        "sentence-embedding score were swept offline on the saved passages of the development "
        "and both earlier held-out sets: no setting raised the development or held-out 1 "
        "figure (every change moved one question at most), so nothing was kept; held-out 3 "
        "was then written and run once, its misses read, and more than 1,000 settings swept "
        "on all four sets' saved passages (none kept). Later on 3 December the baseline was "
        "made faithful (it had borrowed the current word matching), held-out 4 was written "
        "and run once (47 % against 63 %), its misses read, and held-out 5 written and run "
        "once with the selection unchanged (43 % against 57 %; 23 % of its answerable "
        "questions declined). The coverage floor was then lowered from 0.4 to 0.2 (decision "
        "0040) while held-out 6 was written; it was run once (50 % against 67 %). Then the "
        "local embedding model's closeness of each sentence to the question joined the "
        "score (weight 1.5, chosen on the saved passages of all seven sets), and held-out 7, "
        "written meanwhile, was run once with it (47 % against 60 %; words alone would have "
        "found 12 of its 30 golds, with meaning 14, the old selection 18) and its misses "
        "read: mostly the fact is in the sentence after the one that matches the question, "
        "which the old selection's three sentences from anywhere catch. Held-out 8 was "
        "written after the answer-shape fixes of the same afternoon and run once (40 % "
        "against 53 %). Then the answer was made to say more when no passage is a clear answer "
        "(decision 0041), weighed on the saved passages of the nine sets; held-out 9, written "
        "meanwhile, was run once with it (50 % against 53 %) and its misses read; held-out 10, "
        "written after that, was run once with it (50 % against 43 %). Then questions nothing "
        "is near in meaning were declined (decision 0041), checked on the saved passages of "
        "all eleven sets. Then the provider's word matching took Snowball stems, as retrieval's "
        "keyword leg has (decision 0042): on the saved passages of the eleven sets 218 golds of "
        "334 against 214 with the six-letter cut (the old selection 217); held-out 11, written "
        "meanwhile, was run once with it (63 % against 50 %) and its misses read."
    ),
    (
        "To answer in its own words rather than quote, give the bot a generative model: `PATCH "
        '/v1/tenants/{t}/bots/{bot}` with `{"provider": "openai", "model": "…"}` and '
        "`OPENAI_BASE_URL`/`OPENAI_API_KEY` for any OpenAI-compatible server (Ollama, vLLM, "
        "OpenAI…), or `anthropic`/`gemini`; see "
        "[bots.md](bots.md#switching-to-a-generative-model)."
    ),
]


async def _answer(runtime: Runtime, request: TurnRequest) -> str:
    """The reply as a bot with the default provider gets it (with the local model's sentence
    closeness when it is installed), not a call to the selection alone."""
    provider = provider_for("extractive", runtime)
    return "".join([e.text async for e in provider.stream(request) if isinstance(e, TextDelta)])


def _time_row(words_only: list[float], answered: list[float], mode: str) -> Row:
    """What choosing the sentences costs a turn, with the local model's closeness (one
    urgent embedding request per answer, the model already loaded by retrieval) against the
    words-only choice, on the same passages in the same run: information, no target."""

    def p95(xs: list[float]) -> float:
        return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)] * 1000

    closeness = "with sentence closeness" if mode == "local" else "words only (no local model)"
    return Row(
        f"time to choose the answer, p95 ({closeness})",
        f"{p95(answered):.1f} ms",
        f"{p95(words_only):.1f} ms (words only)",
        f"{p95(answered) / max(p95(words_only), 1e-6):.1f}",
        "reported",
    )


def words(reply: str) -> int:
    return len(_CITATION.sub("", reply).split())


def score(items: list[dict[str, Any]], replies: list[str], fallback: str) -> dict[str, float]:
    answerable = [(i, r) for i, r in zip(items, replies, strict=True) if i["gold"]]
    unanswerable = [r for i, r in zip(items, replies, strict=True) if not i["gold"]]
    answered = [r for _, r in answerable if r != fallback]
    return {
        "contains": sum(i["gold"].lower() in r.lower() for i, r in answerable) / len(answerable),
        "declined": sum(r == fallback for r in unanswerable) / max(1, len(unanswerable)),
        "median_words": statistics.median(words(r) for r in answered) if answered else 0.0,
        "p90_words": sorted(words(r) for r in answered)[int(0.9 * (len(answered) - 1))]
        if answered
        else 0.0,
        "fallback_on_answerable": sum(r == fallback for _, r in answerable) / len(answerable),
    }


def _differences(
    label: str, items: list[dict[str, Any]], old: list[str], new: list[str]
) -> list[str]:
    """The questions whose gold only one of the two replies contains, named."""
    only_old, only_new = [], []
    for item, o, n in zip(items, old, new, strict=True):
        if not item["gold"]:
            continue
        gold = item["gold"].lower()
        if gold in o.lower() and gold not in n.lower():
            only_old.append(f"“{item['q']}” ({item['gold']})")
        if gold in n.lower() and gold not in o.lower():
            only_new.append(f"“{item['q']}” ({item['gold']})")
    return [
        f"{label}: gold only in the old reply: {', '.join(only_old) or 'none'}.",
        f"{label}: gold only in the new reply: {', '.join(only_new) or 'none'}.",
    ]


def contained(items: list[dict[str, Any]], replies: list[str]) -> int:
    """How many answerable questions' replies contain their gold phrase."""
    return sum(
        bool(i["gold"]) and i["gold"].lower() in r.lower()
        for i, r in zip(items, replies, strict=True)
    )


def _pooled(new: int, old: int, answerable: int, sets: int) -> Row:
    """The target's row: every answerable question of every set, counted once."""
    return Row(
        f"all {sets} sets ({answerable} answerable questions): reply contains the gold answer",
        f"{new / answerable:.1%} ({new})",
        f"{old / answerable:.1%} ({old}) (before)",
        f"{new / old:.2f}" if old else "—",
        "≥ before",
        new >= old,
    )


def _rows(label: str, new: dict[str, float], old: dict[str, float]) -> list[Row]:
    return [
        Row(
            f"{label}: reply contains the gold answer",
            f"{new['contains']:.0%}",
            f"{old['contains']:.0%} (before)",
            f"{new['contains'] / old['contains']:.2f}" if old["contains"] else "—",
            "reported",
        ),
        Row(
            f"{label}: median words of an answer",
            f"{new['median_words']:.0f}",
            f"{old['median_words']:.0f} (before)",
            f"{new['median_words'] / old['median_words']:.2f}" if old["median_words"] else "—",
            "< 60",
            new["median_words"] < 60,
        ),
        Row(
            f"{label}: 90th percentile words",
            f"{new['p90_words']:.0f}",
            f"{old['p90_words']:.0f} (before)",
        ),
        Row(
            f"{label}: unanswerable questions declined",
            f"{new['declined']:.0%}",
            f"{old['declined']:.0%} (before)",
            target="reported",
        ),
        Row(
            f"{label}: answerable questions declined",
            f"{new['fallback_on_answerable']:.0%}",
            f"{old['fallback_on_answerable']:.0%} (before)",
            target="reported",
        ),
    ]


async def _measure() -> tuple[Section, dict[str, list[dict[str, Any]]]]:
    from parley.bots.schemas import DEFAULT_FALLBACK

    sets = {label: json.loads(path.read_text())["items"] for label, path in SETS.items()}
    mode = "local" if local_embeddings_installed("all-MiniLM-L6-v2") else "none"
    config = BotConfig()
    rows: list[Row] = []
    counts: list[str] = []
    differences: list[str] = []
    details: dict[str, list[dict[str, Any]]] = {}
    timings: tuple[list[float], list[float]] = ([], [])  # words only, the provider's answer
    pooled = [0, 0, 0]  # golds contained: new, old; answerable questions
    async with bench_database(pool_size=30) as bench:
        runtime = bench_runtime(bench, parley_embeddings=mode)
        tenant = await bench.tenant("demo-qa")
        await upload(runtime, tenant)
        await run_worker_until_idle(runtime)
        for label, items in sets.items():
            old_replies: list[str] = []
            new_replies: list[str] = []
            retrieved: list[list[dict[str, Any]]] = []
            for item in items:
                passages = await passages_for_turn(
                    runtime,
                    tenant,
                    config=config,
                    query=item["q"],
                    bot_id=None,
                    bot_version_id=None,
                    conversation_id=None,
                    message_id=None,
                    operation_id=None,
                )
                request = TurnRequest(
                    system="",
                    messages=[ChatMessage(role="user", content=item["q"])],
                    model="extractive",
                    temperature=0.0,
                    max_tokens=512,
                    fallback_text=DEFAULT_FALLBACK,
                    passages=passages,
                )
                retrieved.append(
                    [{"source_id": p.source_id, "title": p.title, "text": p.text} for p in passages]
                )
                old_replies.append(extractive_v0.compose(request))
                started = time.perf_counter()
                words_only = extractive.compose(request)
                middle = time.perf_counter()
                new_replies.append(await _answer(runtime, request))
                timings[0].append(middle - started)
                timings[1].append(time.perf_counter() - middle)
                del words_only
            pooled[0] += contained(items, new_replies)
            pooled[1] += contained(items, old_replies)
            pooled[2] += sum(1 for i in items if i["gold"])
            old = score(items, old_replies, DEFAULT_FALLBACK)
            new = score(items, new_replies, DEFAULT_FALLBACK)
            rows += _rows(label, new, old)
            answerable = sum(1 for i in items if i["gold"])
            counts.append(
                f"{label}: {answerable} answerable and {len(items) - answerable} unanswerable"
            )
            differences += _differences(label, items, old_replies, new_replies)
            details[label] = [
                {"q": i["q"], "gold": i["gold"], "old": o, "new": n, "passages": r}
                for i, o, n, r in zip(items, old_replies, new_replies, retrieved, strict=True)
            ]
    rows.insert(0, _pooled(pooled[0], pooled[1], pooled[2], sets=len(sets)))
    rows.append(_time_row(*timings, mode))
    section = Section(
        id="Q1",
        title="Extractive answers on the demo's knowledge",
        method=(__doc__ or "").split("\n\n", 1)[1].strip(),
        command=COMMAND,
        rows=rows,
        notes=[
            f"Questions: {'; '.join(counts)}; retrieval "
            f"`{'hybrid, local embeddings' if mode == 'local' else 'keyword-only'}` "
            "(what `make run` uses on this install).",
            *differences,
            *NOTES,
        ],
    )
    return section, details


def run(quick: bool = False) -> Section:
    section, details = asyncio.run(_measure())
    out = Path(__file__).resolve().parent.parent / "test-artifacts"
    out.mkdir(exist_ok=True)
    for label, detail in details.items():
        (out / f"q1_replies_{label}.json").write_text(json.dumps(detail, indent=1))
    return section
