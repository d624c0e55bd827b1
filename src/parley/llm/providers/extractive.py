"""The built-in offline provider: answers with the one or two sentences of the retrieved
passages that best answer the question, each cited `[n]` (a little more when no passage is a
clear answer; each place its own paragraph), or with the bot's fallback text when nothing
relevant was retrieved. No network, deterministic.

Passages reach it only when retrieval judged them relevant (see `knowledge.grounding`), so an
empty list means "nothing in the knowledge base answers this" and the bot says so. It reads
only prose: table rows, headings, code blocks (also those a chunk boundary cut open) and
code-like lines are never quoted. Sentences are chosen by the question's words they share
and, when the local embedding model is installed, by how close they are in meaning.
Measured on question sets over Parley's own docs by `python -m bench q1` (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping

import snowballstemmer
import structlog

from parley.kit.markup import without_links_and_bold
from parley.llm.base import (
    Passage,
    SentenceEmbedder,
    StreamEvent,
    TextDelta,
    TurnRequest,
    Usage,
)

log = structlog.get_logger(__name__)

_WORDS = re.compile(r"\S+\s*")
_TERMS = re.compile(r"[^\W_]+", re.UNICODE)
# The Snowball English stop words (PostgreSQL's `english` text search configuration, which
# the BM25 leg uses), plus the modal and filler verbs of questions ("may", "get"): with terms
# weighed by rarity, a filler word that happens to be rare in the passages would otherwise
# outweigh the words that say what is asked.
_STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing don down during each few for
    from further had has have having he her here hers herself him himself his how i if in into
    is it its itself just me more most my myself no nor not now of off on once only or other
    our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up us very was
    we were what when where which while who whom why will with would you your yours yourself
    yourselves may might must shall get gets got getting need needs""".split()  # noqa: SIM905
)
MAX_WORDS = 50
"""An answer's length cap (a single longer sentence is kept whole)."""
RANK_BONUS = 0.2
"""A nudge towards the passage retrieval ranked higher (1st: +0.2, 2nd: +0.1…)."""
WORD_COST = 0.004
"""What each word beyond a window's first sentence costs (in share of the question)."""
MAX_EXTRA = 1
"""How many windows from elsewhere may join the best one."""
SECOND_SHARE = 0.7
"""A second passage's window joins the answer when it scores this close to the best one."""
CLEAR_LEAD = 0.9
"""The best window is a clear answer when the best one from elsewhere scores below this share
of it (and it covers `CLEAR_COVERAGE`)."""
CLEAR_COVERAGE = 0.5
"""The share of the question's weight a clear answer covers by itself."""
CLEAR_NEAR = 0.7
"""A window holding a sentence this close in meaning to the question (cosine, local model)
is a clear answer whatever the rest scores."""
UNSURE_WORDS = 110
"""An answer's cap when no window is a clear answer: it says more rather than guess."""
MIN_COVERAGE = 0.2
"""Below this share of the question's weight, no sentence answers it. A low floor: whether
anything in the knowledge base answers is retrieval's relevance gate's call
(`knowledge.grounding`); at 0.4 this provider declined 8 % of answerable questions on Q1's
sets (23 % on one written afterwards) to decline 3 more of 24 unanswerable ones."""
MIN_CLOSENESS = 0.25
"""With the local model, when no sentence is even this close in meaning to the question
(cosine), nothing answers it, whatever words they share: "Who wrote Hamlet?" got through
retrieval on "wrote" and was answered with a sentence about how a visitor is named. On Q1's
eleven sets the unanswerable questions retrieval let through reach 0.07 and 0.16 (declined
now), the answerable ones no lower than 0.31 (none declined)."""
ECHO_NEW_WORDS = 1
"""A sentence with at most this many words the question lacks only says the question back."""
REPEAT_SHARE = 0.3
"""A second window joins only when more than this share of its words are new to the answer."""
EXTRA_COVERAGE = 0.4
"""A window from elsewhere joins the best one only when it covers this share by itself."""
SEMANTIC_WEIGHT = 1.5
"""What a window's closeness in meaning to the question adds (the cosine of its closest
sentence to the question under the local embedding model, when there is one): it finds the
sentence that answers a question worded apart from the docs, which shared words cannot."""
CLOSENESS_SENTENCES = 10
"""How many sentences (those sharing most words with the question) are embedded per answer."""
CLOSENESS_TIMEOUT = 1.0
"""Seconds an answer waits for the model (busy with many answers at once, or a cold start)
before it goes by words alone: meaning improves an answer, it must not hold one up."""
QUANTITY_BONUS = 0.15
"""A nudge towards a window that states a quantity when the question asks for one."""

_ASKS_QUANTITY = re.compile(
    r"^\W*(how (long|many|much|big|large|small|often|fast|old|far)|what size)\b", re.I
)
_QUANTITY = re.compile(
    r"\b\d[\d,.]*\s?(ms|s|seconds?|minutes?|hours?|days?|weeks?|months?|years?|[kmg]i?b|"
    r"bytes?|characters?|tokens?|words?|times|attempts?|%|×)(?!\w)"
    r"|\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve|once|twice)\b",
    re.I,
)

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_TABLE = re.compile(r"^\s*\|")
_HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")
_RULE = re.compile(r"^\s{0,3}([-=*_]\s*){3,}$")
_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+")
# A sentence ends at . ! or ? before a capital, a digit or inline code, but not after "e.g." or
# "i.e." ("…, e.g. `PARLEY_X: …` (exit code 2).": the example and what follows it belong to it).
_SPLIT = re.compile(r"(?<!\We\.g\.)(?<!\Wi\.e\.)(?<=[.!?])\s+(?=`|[\"'(\[*]?[A-Z0-9])")
_CODE_CHARS = frozenset("{}[]()<>=;$\\|/\"'`_#@")


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


_SNOWBALL = snowballstemmer.stemmer("english")
_SNOWBALL_LOCK = threading.Lock()  # a stemmer object keeps the word it works on


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """The word's Snowball (Porter 2) English stem, the stemmer of PostgreSQL's `english`
    configuration that retrieval's keyword leg uses: signs/signed/signing, body/bodies,
    use/using and configure/configuration meet, as they do in retrieval (decision 0042)."""
    with _SNOWBALL_LOCK:
        return str(_SNOWBALL.stemWord(word))


def stems(text: str) -> set[str]:
    """Stems of the words of `text`, without stop words and single letters (the "s" of
    "visitor's")."""
    words = (m.group(0).lower() for m in _TERMS.finditer(text))
    return {_stem(w) for w in words if len(w) > 1 and w not in _STOP}


def prose_blocks(text: str) -> list[str]:
    """The paragraphs and list items of a passage, each as one line; code fences, tables,
    headings, rules and indented code are left out. A chunk may start inside a code block
    whose opening fence is in the previous chunk: an odd number of fences where the first
    closes a block is detected by what precedes it looking like code."""
    return [block for _, block in headed_blocks(text) if block]


_LABEL = re.compile(r"^(\*\*|__)(.+?)\1")
_FAQ = re.compile(r"^([QA]):\s+(.*)$")
"""A line of an FAQ pair as the knowledge base stores it ("Q: …" then "A: …")."""


def headed_blocks(text: str) -> list[tuple[str, str]]:
    """`prose_blocks` with what each block is about: the heading above it in the passage and,
    for a list item that starts with a bold label (`- **local** needs…`), that label, for an
    FAQ answer its question; an empty block stands where a section ends."""
    lines = text.splitlines()
    fences = [i for i, line in enumerate(lines) if _FENCE.match(line)]
    in_fence = False
    if len(fences) % 2 == 1:
        before = [line for line in lines[: fences[0]] if line.strip()]
        in_fence = bool(before) and sum(map(_codeish, before)) * 2 >= len(before)
    blocks: list[tuple[str, str]] = []
    current: list[str] = []
    heading = ""

    def flush() -> None:
        if current:
            label = _LABEL.match(current[0])
            about = f"{heading} {label.group(2)}" if label else heading
            blocks.append((about, " ".join(current)))
            current.clear()

    def section_break() -> None:
        """A heading or a rule ends what the text before it says: an empty block marks it,
        so a lead-in ending with a colon is never joined to the next section's first
        paragraph. A table or code left out is not marked: the paragraph after an example
        usually goes on explaining it ("…per provider:" `PUT …` "Keys are never returned…")."""
        flush()
        if blocks and blocks[-1][1]:
            blocks.append((heading, ""))

    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            flush()
            continue
        stripped = line.strip()
        if in_fence or not stripped:
            flush()
            continue
        if _HEADING.match(line):
            section_break()
            heading = stripped.lstrip("#").strip()
            continue
        faq = _FAQ.match(stripped)
        if faq and faq.group(1) == "Q":
            # An FAQ pair's question is what its answer is about, like a heading: it is
            # never quoted back to the visitor, who has just asked it.
            section_break()
            heading = faq.group(2)
            continue
        if faq:  # the answer: quoted without its "A:" label
            flush()
            current.append(faq.group(2))
            continue
        if _RULE.match(line):
            section_break()
            continue
        if _TABLE.match(line):
            flush()
            continue
        if line.startswith(("    ", "\t")) and not current:
            continue  # indented code
        if _ITEM.match(line):
            flush()
            stripped = _ITEM.sub("", line, count=1).strip()
        current.append(stripped)
    flush()
    return blocks


_INLINE_CODE = re.compile(r"`[^`]*`")
MAX_CODE_SPANS = 7


def _codeish(text: str) -> bool:
    """A line or sentence that is mostly code, a command, JSON or a URL, not prose. Inline
    code in a sentence (`PARLEY_DATA_DIR`, `make run`) counts as one word."""
    if len(_INLINE_CODE.findall(text)) > MAX_CODE_SPANS:  # a list of fields or names
        return True
    stripped = _INLINE_CODE.sub("x", text.strip())
    if not stripped:
        return False
    symbols = sum(1 for ch in stripped if ch in _CODE_CHARS)
    letters = sum(1 for ch in stripped if ch.isalpha())
    return letters < 3 or symbols / max(1, len(stripped)) > 0.12


def _plain(sentence: str) -> str:
    """Markdown links as their text, bold markers dropped, whitespace collapsed."""
    return " ".join(without_links_and_bold(sentence).split())


TRIM_OVER = 40
"""A sentence longer than this many words is quoted by its leading clauses only."""
TRIM_TO = 30
"""How many words of leading clauses a trimmed sentence keeps (at least its first clause)."""
_OPEN, _CLOSE = "([{", ")]}"


def _clauses(sentence: str) -> list[str]:
    """The sentence cut after each `,` or `;` that is outside brackets and inline code, so
    "a token (JWT, 15 minutes, `kid`) bound to…" is never cut inside its parenthesis."""
    pieces: list[str] = []
    depth, code, start = 0, False, 0
    for i, ch in enumerate(sentence):
        if ch == "`":
            code = not code
        elif code:
            continue
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch in ",;" and depth == 0 and sentence[i + 1 : i + 2] == " ":
            pieces.append(sentence[start : i + 1])
            start = i + 2
    pieces.append(sentence[start:])
    return [p for p in pieces if p.strip()]


def _listish(clause: str) -> bool:
    """A clause that is an item of a list of names or fields (`iss=parley`, `sub` (user id))."""
    return len(_INLINE_CODE.sub("", clause).split()) < 3 and "`" in clause


def _trim(sentence: str, wanted: set[str]) -> str:
    """A run-on sentence, or one that runs into a list of fields, as the run of its clauses
    (at most `TRIM_TO` words, never into a list) that holds most of the question's terms,
    starting with a clause that has one, the earliest of equals, with an ellipsis where it
    was cut: the answer reads as a sentence, not a catalogue. Other sentences unchanged."""
    if len(sentence.split()) <= TRIM_OVER and len(_INLINE_CODE.findall(sentence)) <= MAX_CODE_SPANS:
        return sentence
    pieces = _clauses(sentence)

    def run(first: int) -> list[str]:
        kept = [pieces[first]]
        for piece in pieces[first + 1 :]:
            if _listish(piece) or len(" ".join([*kept, piece]).split()) > TRIM_TO:
                break
            kept.append(piece)
        return kept

    starts = [i for i, p in enumerate(pieces) if i == 0 or not _listish(p)]
    first = max(
        starts,
        key=lambda i: (len(stems(" ".join(run(i))) & wanted), bool(stems(pieces[i]) & wanted), -i),
    )
    kept = run(first)
    if len(kept) == len(pieces):
        return sentence
    text = " ".join(kept)
    if first + len(kept) < len(pieces):
        text = text.rstrip(",;") + " …"
    return f"… {text}" if first else text


def _joined_leads(pieces: list[str]) -> list[str]:
    """A block's opening "Yes." or "No." (under three words) goes with the sentence after it:
    alone it is too short to quote, and without it an FAQ answer loses its point. (A piece in
    lower case is the tail of a sentence a chunk boundary cut, not a lead: it stays out.)"""
    if len(pieces) > 1 and len(pieces[0].split()) < 3 and pieces[0][:1].isupper():
        return [f"{pieces[0]} {pieces[1]}", *pieces[2:]]
    return pieces


def _sentences(passages: list[Passage], wanted: set[str]) -> list[tuple[int, int, int, str]]:
    """(passage number, block, position, sentence) for every prose sentence. A passage's
    first sentence that starts in lower case is the tail of one a chunk boundary cut
    ("characters (configurable), not containing…"): quoted after an ellipsis, as such."""
    out = []
    for n, passage in enumerate(passages, start=1):
        opening = True
        for b, (_, block) in enumerate(headed_blocks(passage.text)):
            for pos, raw in enumerate(_joined_leads(_SPLIT.split(block))):
                cut, opening = opening and raw[:1].islower(), False
                sentence = _trim(_plain(raw), wanted)
                if len(sentence.split()) >= 3 and not _codeish(sentence):
                    cut = cut and not sentence.startswith("…")
                    out.append((n, b, pos, f"… {sentence}" if cut else sentence))
    return out


def _shape(last: str, words: int, size: int) -> float:
    """Fragments, run-ons and windows that end by announcing a list or a block count less."""
    shape = 1.0
    if size == 1 and words < 6:
        shape *= 0.7
    if size == 1 and words > 45:
        shape *= 0.8
    if last.endswith(":"):
        shape *= 0.6
    return shape


def _next(
    candidates: list[tuple[int, int, int, str]], at: dict[tuple[int, int, int], int], j: int
) -> int | None:
    """The sentence after `j` in its paragraph; after a sentence that ends with a colon, the
    first sentence of the next block (the list item it announces)."""
    n, b, pos, sentence = candidates[j]
    follow = at.get((n, b, pos + 1))
    if follow is None and sentence.endswith(":"):
        follow = at.get((n, b + 1, 0))
    return follow


def _weights(wanted: set[str], sentences: list[set[str]]) -> dict[str, float]:
    """How much each question term says, by its BM25 inverse document frequency over the
    retrieved sentences: a term most of them share ("parley", "use") tells little about which
    one answers; a rare one ("redis", "suite") tells a lot. A term no sentence has weighs as
    little as the commonest one that some sentence has, so a word the docs put differently
    ("valid" for "expires") does not sink the question; the price is that an off-topic
    question sharing one word with a passage is declined less often (Q1 measures both)."""
    n = len(sentences)
    df = {t: sum(t in s for s in sentences) for t in wanted}
    idf = {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in wanted if df[t]}
    top = min(idf.values(), default=1.0)
    return {t: idf.get(t, top) for t in wanted}


def choose(
    question: str, passages: list[Passage], closeness: Mapping[str, float] | None = None
) -> list[list[tuple[int, str]]]:
    """The windows to answer with, best first, each as (passage number, sentence) in reading
    order: the window of one to three consecutive sentences of one paragraph that covers most
    of the question's weight (terms weighted by `_weights`; those in the passage's title count
    half) and, with `closeness` (sentence → cosine to the question), is closest in meaning, a
    longer window winning only when it adds enough, plus a close window from elsewhere when it
    fits (in `MAX_WORDS`, or `UNSURE_WORDS` with the best window's next sentence when the best
    is not a clear answer); empty when no window covers `MIN_COVERAGE` of the weight."""
    wanted = stems(question)
    candidates = _sentences(passages, wanted)
    if not wanted or not candidates:
        return []
    if closeness and max(closeness.values()) < MIN_CLOSENESS:
        return []  # far from anything in meaning: shared words are a coincidence
    terms = [stems(c[3]) & wanted for c in candidates]
    unique = {c[3]: t for c, t in zip(candidates, terms, strict=True)}  # chunks overlap
    weight = _weights(wanted, list(unique.values()))
    total = sum(weight.values())

    def mass(found: set[str]) -> float:
        return sum(weight[t] for t in found)

    # A passage's title, the heading above a paragraph and a list item's bold label say what
    # its sentences are about: their terms count half.
    about = {
        (n, b): stems(f"{p.title} {heading}") & wanted
        for n, p in enumerate(passages, start=1)
        for b, (heading, _) in enumerate(headed_blocks(p.text))
    }
    lengths = [len(c[3].split()) for c in candidates]
    # A question that opens with "How long…", "How many…" asks for a quantity: a sentence that
    # states one (a number with a unit, or a number word) is the likelier answer.
    asks_quantity = bool(_ASKS_QUANTITY.search(question))
    quantity = [asks_quantity and bool(_QUANTITY.search(c[3])) for c in candidates]
    at = {c[:3]: i for i, c in enumerate(candidates)}
    near = [closeness.get(c[3], 0.0) if closeness else 0.0 for c in candidates]
    windows: list[tuple[float, float, list[int]]] = []
    for i, (n, b, _, _) in enumerate(candidates):
        window = [i]
        while True:
            size = sum(lengths[j] for j in window)
            if size > MAX_WORDS and len(window) > 1:
                break
            covered = set().union(*(terms[j] for j in window))
            context = about[n, b] - covered
            coverage = (mass(covered) + 0.5 * mass(context)) / total
            shape = _shape(candidates[window[-1]][3], size, len(window))
            added = size - lengths[i]  # words beyond the first sentence must earn their place
            typed = QUANTITY_BONUS if any(quantity[j] for j in window) else 0.0
            windows.append(
                (
                    coverage * shape
                    - WORD_COST * added
                    + RANK_BONUS / n
                    + typed
                    + SEMANTIC_WEIGHT * max(near[j] for j in window),
                    coverage,
                    list(window),
                )
            )
            if len(window) == 3:
                break
            follow = _next(candidates, at, window[-1])
            if follow is None:
                break
            window.append(follow)
    # Only windows that cover enough of the question compete; none: nothing answers it.
    windows = sorted((w for w in windows if w[1] >= MIN_COVERAGE), key=lambda w: (-w[0], w[2]))
    if not windows:
        return []
    windows = windows[:1] + [w for w in windows[1:] if w[1] >= EXTRA_COVERAGE]
    value, coverage, chosen = windows[0]

    def places(window: list[int]) -> set[tuple[int, int]]:
        return {candidates[j][:2] for j in window}

    def repeats(window: list[int], said: set[str]) -> bool:
        """A window that says what is said already (the same sentence on two pages, reworded,
        or twice in overlapping chunks): one of its sentences has most of its words in it."""
        return any(
            len(stems(candidates[j][3]) - said) <= REPEAT_SHARE * len(stems(candidates[j][3]))
            for j in window
        )

    # Is the best window a clear answer? It covers most of the question and nothing from
    # elsewhere that says something else scores near it, or the model finds it very close in
    # meaning. When it is not, the answer says more rather than guess (the fact often sits in
    # the sentence after the one that matches the question, or on another page): the sentence
    # after it, and a close window from elsewhere may join, within `UNSURE_WORDS`. A clear
    # answer stays within `MAX_WORDS`, a sentence or two.
    best_words = set().union(*(stems(candidates[j][3]) for j in chosen))
    runner = next(
        (
            w[0]
            for w in windows[1:]
            if places(w[2]).isdisjoint(places(chosen)) and not repeats(w[2], best_words)
        ),
        0.0,
    )
    clear = (coverage >= CLEAR_COVERAGE and runner < CLEAR_LEAD * value) or max(
        near[j] for j in chosen
    ) >= CLEAR_NEAR
    budget = MAX_WORDS if clear else UNSURE_WORDS
    # A sentence that only says the question back ("A person can take over a chat from the
    # bot.") is not an answer by itself: the sentence after it says how.
    if len(chosen) == 1 and len(stems(candidates[chosen[0]][3]) - wanted) <= ECHO_NEW_WORDS:
        follow = _next(candidates, at, chosen[0])
        if follow is not None and lengths[chosen[0]] + lengths[follow] <= MAX_WORDS:
            chosen = [chosen[0], follow]
    size = sum(lengths[j] for j in chosen)
    if not clear:
        follow = _next(candidates, at, chosen[-1])
        if follow is not None and size + lengths[follow] <= budget:
            chosen, size = [*chosen, follow], size + lengths[follow]
    # Close windows from elsewhere (another passage or paragraph) join while they fit: two
    # short sentences that answer are better than one that may not.
    groups = [chosen]
    where = places(chosen)
    said = {candidates[j][3] for j in chosen}  # overlapping chunks repeat sentences
    for other_value, _, other in windows[1:]:
        if other_value < SECOND_SHARE * value or len(groups) > MAX_EXTRA:
            break
        more = sum(lengths[j] for j in other)
        # A window that repeats the answer adds only length: it stays out.
        new = not repeats(other, set().union(*(stems(t) for t in said)))
        if new and where.isdisjoint(places(other)) and size + more <= budget:
            groups.append(other)
            size, where = size + more, where | places(other)
            said |= {candidates[j][3] for j in other}
    return [[(candidates[j][0], candidates[j][3]) for j in group] for group in groups]


def _question(request: TurnRequest) -> str:
    return request.messages[-1].content if request.messages else ""


def compose(request: TurnRequest, closeness: Mapping[str, float] | None = None) -> str:
    if not request.passages:
        return request.fallback_text
    picked = choose(_question(request), request.passages, closeness)
    if not picked:
        return request.fallback_text
    # Each window its own paragraph (the widget renders a blank line as one).
    return "\n\n".join(" ".join(f"{sentence} [{n}]" for n, sentence in group) for group in picked)


async def closeness_of(
    embedder: SentenceEmbedder, question: str, passages: list[Passage]
) -> dict[str, float] | None:
    """Each prose sentence's cosine to the question (the vectors are unit length), embedded
    ahead of any ingestion batch; `None` when the embedder fails: the answer then goes by
    shared words alone rather than not at all."""
    wanted = stems(question)
    unique = list(dict.fromkeys(c[3] for c in _sentences(passages, wanted)))  # reading order
    if not unique:
        return None
    # The model's time grows with the text (about 9 ms a sentence on two cores): only the
    # sentences sharing most words with the question are embedded; the rest get the lowest
    # closeness found. Measured on Q1's sets: the same answers as embedding them all.
    ranked = sorted(unique, key=lambda s: -len(stems(s) & wanted))[:CLOSENESS_SENTENCES]
    try:
        async with asyncio.timeout(CLOSENESS_TIMEOUT):
            vectors = await embedder.embed([question, *ranked], urgent=True)
    except TimeoutError:  # a model busy with other answers: words alone, without the wait
        log.warning("extractive.closeness_timed_out", seconds=CLOSENESS_TIMEOUT)
        return None
    except Exception as exc:  # the operator's model: its failure must not cost the answer
        log.warning("extractive.closeness_failed", error=type(exc).__name__)
        return None
    asked = vectors[0]
    near = {
        sentence: math.fsum(a * b for a, b in zip(asked, vector, strict=True))
        for sentence, vector in zip(ranked, vectors[1:], strict=True)
    }
    lowest = min(near.values())
    return {sentence: near.get(sentence, lowest) for sentence in unique}


class ExtractiveProvider:
    """`embedder` finds the process's local embedding model when there is one (retrieval
    builds it); the provider never sends text to a remote service."""

    name = "extractive"

    def __init__(self, embedder: Callable[[], SentenceEmbedder | None] | None = None) -> None:
        self._embedder = embedder

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        embedder = self._embedder() if self._embedder else None
        closeness = None
        if embedder is not None and request.passages:
            closeness = await closeness_of(embedder, _question(request), request.passages)
        answer = compose(request, closeness)
        for match in _WORDS.finditer(answer):
            yield TextDelta(match.group(0))
        prompt = request.system + "".join(m.content for m in request.messages)
        yield Usage(_approx_tokens(prompt), _approx_tokens(answer))
