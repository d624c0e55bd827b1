"""Chunking: budgets, overlap, structure, FAQ pairs, pages, determinism, token counts."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from parley.knowledge.chunking import Chunk, chunk, sentences
from parley.knowledge.document import ExtractedDocument, Section, faq_document
from parley.knowledge.errors import EmptyDocument
from parley.knowledge.extract import extract
from parley.knowledge.markdown import text_document
from parley.knowledge.tokens import count_tokens
from tests.knowledge.samples import make_pdf

WORDS = [
    *("account", "billing", "customer", "delivery", "invoice", "parcel", "refund"),
    *("warehouse", "subscription", "configuration", "authentication", "the", "a", "of"),
    *("to", "and", "in", "is", "for", "with", "on", "that", "by", "this", "be"),
    *("international", "responsibilities", "notwithstanding", "tracking", "2026", "14", "3.5"),
]


def prose(seed: int, sentences_: int) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(sentences_):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 24))]
        out.append(words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice(".?!"))
    return " ".join(out)


def doc_of(*sections: Section, title: str = "Doc") -> ExtractedDocument:
    return ExtractedDocument(title=title, sections=list(sections), format="text")


def _words(text: str) -> list[str]:
    return text.split()


def test_token_approximation() -> None:
    assert count_tokens("The quick brown fox.") == 5
    assert count_tokens("internationalisation") == 3  # 20 letters: 3 × 8-letter pieces
    assert count_tokens("2026-12-01") == 2 + 1 + 1 + 1 + 1
    assert count_tokens("東京都に住んでいます") == 10
    assert count_tokens("") == 0


@pytest.mark.parametrize(("max_tokens", "overlap"), [(300, 50), (120, 20), (40, 0), (64, 16)])
def test_every_chunk_respects_the_budget_and_loses_no_text(max_tokens: int, overlap: int) -> None:
    paragraphs = [prose(i, 3 + i % 9) for i in range(25)]
    long_sentence = " ".join(["word"] * 500) + "."
    url = "https://example.com/" + "a1b2" * 900
    body = "\n\n".join([*paragraphs, long_sentence, url])
    doc = doc_of(Section(["Guide", "Setup"], body))

    chunks = chunk(doc, max_tokens=max_tokens, overlap_tokens=overlap)

    assert len(chunks) > 5
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.token_count == count_tokens(c.text)
        assert c.token_count <= max_tokens
        assert c.text == "Guide > Setup\n\n" + c.body
    joined = " ".join(c.body for c in chunks)
    for paragraph in paragraphs:
        for s in sentences(paragraph):
            assert s in joined or all(w in joined for w in _words(s))
    assert "https://example.com/a1b2a1b2" in joined
    assert "a1b2" * 5 in joined  # the 3,600-token URL is cut by characters, nothing dropped
    assert sum(c.body.count("a1b2") for c in chunks) >= 900 - len(chunks)


def test_consecutive_chunks_of_a_section_overlap() -> None:
    doc = doc_of(Section(["Policy"], "\n\n".join(prose(i, 6) for i in range(12))))
    chunks = chunk(doc, max_tokens=150, overlap_tokens=40)
    assert len(chunks) >= 4
    for previous, current in itertools.pairwise(chunks):
        head = _words(current.body)
        # the next chunk starts with a run of words the previous one ended with
        n = next(n for n in range(len(head), 0, -1) if _words(previous.body)[-n:] == head[:n])
        carried = count_tokens(" ".join(head[:n]))
        assert 1 <= carried <= 40


def test_without_overlap_nothing_repeats() -> None:
    text = "\n\n".join(f"Paragraph number {i} says something unique." for i in range(200))
    chunks = chunk(doc_of(Section([], text)), max_tokens=60, overlap_tokens=0)
    bodies = " ".join(c.body for c in chunks)
    assert bodies.count("Paragraph number 7 says") == 1
    assert all(c.body.startswith("Paragraph number") for c in chunks)  # split on paragraphs


def test_small_sections_pack_within_a_top_level_section_but_never_across() -> None:
    doc = doc_of(
        Section(["Install"], "Run the installer."),
        Section(["Install", "Linux"], "Use the deb package."),
        Section(["Install", "macOS"], "Use the pkg."),
        Section(["Operate"], "Watch the logs."),
        Section(["Operate", "Backups"], "Back up nightly."),
    )
    chunks = chunk(doc)
    assert [(c.heading_path, c.text) for c in chunks] == [
        (
            ["Install"],
            "Install\n\nRun the installer.\n\nLinux\nUse the deb package.\n\nmacOS\nUse the pkg.",
        ),
        (["Operate"], "Operate\n\nWatch the logs.\n\nBackups\nBack up nightly."),
    ]


def test_a_heading_all_sections_share_is_not_the_top_level() -> None:
    doc = text_document(
        "Guide",
        "# Guide\n\nIntro.\n\n## Install\n\nRun it.\n\n### Linux\n\n    apt install x\n\n"
        "## Operate\n\nWatch it.",
    )
    assert [(c.heading_path, c.body) for c in chunk(doc)] == [
        (["Guide"], "Intro."),
        (["Guide", "Install"], "Run it.\n\nLinux\n    apt install x"),
        (["Guide", "Operate"], "Watch it."),
    ]


def test_headings_are_carried_by_every_piece_of_a_split_section() -> None:
    doc = doc_of(
        Section(["Handbook", "Travel", "Expenses"], prose(1, 40)),
        Section(["Handbook", "Leave"], prose(2, 3)),
    )
    chunks = chunk(doc, max_tokens=100, overlap_tokens=10)
    travel = [c for c in chunks if c.heading_path == ["Handbook", "Travel", "Expenses"]]
    assert len(travel) > 3
    assert all(c.text.startswith("Handbook > Travel > Expenses\n\n") for c in travel)
    assert chunks[-1].heading_path == ["Handbook", "Leave"]  # not packed with a split section


def test_a_huge_heading_path_leaves_room_for_the_body() -> None:
    heading = " ".join(["Heading"] * 300)
    chunks = chunk(doc_of(Section([heading], prose(3, 30))), max_tokens=90, overlap_tokens=10)
    assert all(c.token_count <= 90 for c in chunks)
    assert all(c.text.startswith("Heading Heading") for c in chunks)
    assert all(c.heading_path == [heading] for c in chunks)


def test_faq_pairs_are_never_split_nor_merged() -> None:
    long_answer = prose(9, 40)
    doc = faq_document(
        [
            ("How do I reset my password?", "Open Settings, then Security."),
            ("Do you ship abroad?", long_answer),
            ("  ", "an answer without a question is skipped"),
            ("Can I pay by invoice?", "Yes, on the Business plan."),
        ]
    )
    chunks = chunk(doc, max_tokens=100, overlap_tokens=20)
    assert [c.text for c in chunks] == [
        "Q: How do I reset my password?\nA: Open Settings, then Security.",
        f"Q: Do you ship abroad?\nA: {long_answer}",
        "Q: Can I pay by invoice?\nA: Yes, on the Business plan.",
    ]
    assert chunks[1].token_count > 100  # kept whole although over the budget


def test_faq_without_any_complete_pair_is_empty() -> None:
    with pytest.raises(EmptyDocument):
        faq_document([("Question?", "  ")])


def test_text_document_recognises_markdown_headings() -> None:
    doc = text_document(
        "  Opening\thours ", "Intro line.\n\n# Weekdays\n\n9 to 5.\n\n# Weekends\n\nClosed."
    )
    assert doc.title == "Opening hours"
    chunks = chunk(doc)
    assert [(c.heading_path, c.body) for c in chunks] == [
        ([], "Intro line."),
        (["Weekdays"], "9 to 5."),
        (["Weekends"], "Closed."),
    ]


def test_headings_lose_their_inline_markup_as_a_reader_sees_them() -> None:
    # A Markdown file's first heading becomes the source's title in the console and in the
    # citations under an answer: "(`/v1/compat/*`)" showed its backticks there.
    md = (
        b"# OpenAI-compatible API (`/v1/compat/*`)\n\nIntro.\n\n"
        b"## **Keys** and [scopes](auth.md)\n\nPARLEY_API_KEYS is read at start-up.\n"
    )
    doc = extract(md, filename="compat.md", content_type="text/markdown")
    assert doc.title == "OpenAI-compatible API (/v1/compat/*)"
    paths = [c.heading_path for c in chunk(doc)]
    assert ["OpenAI-compatible API (/v1/compat/*)", "Keys and scopes"] in paths
    assert "PARLEY_API_KEYS" in " ".join(c.body for c in chunk(doc))


def test_pdf_chunks_carry_their_page_and_never_span_pages() -> None:
    pages = [("Chapter 1", prose(1, 30)), (None, prose(2, 30)), ("Chapter 2", prose(3, 5))]
    doc = extract(make_pdf(pages), filename="book.pdf", content_type=None)
    chunks = chunk(doc, max_tokens=120, overlap_tokens=20)

    assert {c.page for c in chunks} == {1, 2, 3}
    assert [c.page for c in chunks] == sorted(c.page or 0 for c in chunks)
    by_page = {p: " ".join(c.body for c in chunks if c.page == p) for p in (1, 2, 3)}
    first_words_of_page_2 = " ".join(_words(doc.sections[1].text)[:8])
    assert first_words_of_page_2 in by_page[2]
    assert first_words_of_page_2 not in by_page[1]
    assert {tuple(c.heading_path) for c in chunks if c.page == 2} == {("Chapter 1",)}
    assert {tuple(c.heading_path) for c in chunks if c.page == 3} == {("Chapter 2",)}


def _digest(chunks: list[Chunk]) -> str:
    rows = [[c.ordinal, c.text, c.heading_path, c.page, c.token_count] for c in chunks]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


SCRIPT = """
from tests.knowledge.test_chunking import build, _digest
from parley.knowledge.chunking import chunk
print(_digest(chunk(build(), max_tokens=80, overlap_tokens=15)))
"""


def build() -> ExtractedDocument:
    return doc_of(
        *(Section(["Part " + str(i % 3), "Sub " + str(i)], prose(i, 1 + i * 3)) for i in range(12))
    )


def test_output_is_deterministic_across_runs_and_processes() -> None:
    here = _digest(chunk(build(), max_tokens=80, overlap_tokens=15))
    assert here == _digest(chunk(build(), max_tokens=80, overlap_tokens=15))
    out = subprocess.run(  # another process with another string-hash seed
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert out.stdout.strip() == here


def test_sentence_splitting_keeps_abbreviations_and_decimals() -> None:
    text = "Dr. Smith paid 3.5 EUR, e.g. by card. Then he left! Did he? 東京です。次です。"
    assert sentences(text) == [
        "Dr. Smith paid 3.5 EUR, e.g. by card.",
        "Then he left!",
        "Did he?",
        "東京です。",
        "次です。",
    ]


def test_invalid_parameters() -> None:
    doc = doc_of(Section([], "text"))
    with pytest.raises(ValueError, match="max_tokens"):
        chunk(doc, max_tokens=5)
    with pytest.raises(ValueError, match="overlap"):
        chunk(doc, max_tokens=100, overlap_tokens=60)


def test_empty_sections_yield_no_chunks() -> None:
    assert chunk(doc_of(Section(["A"], "  "), Section(["B"], ""))) == []


@pytest.mark.timeout(60)  # a hang guard: quadratic regexes would take hours on these
def test_hostile_text_is_chunked_in_linear_time() -> None:
    hostile = [
        "." * 300_000 + "x",
        "a. b " * 100_000,
        "e.g. A " * 100_000,
        "word" * 100_000,
        "?" * 100_000 + " A",
    ]
    for text in hostile:
        chunks = chunk(doc_of(Section(["H"], text)), max_tokens=300, overlap_tokens=50)
        assert chunks
        assert all(c.token_count <= 300 for c in chunks)
    markdown = "---\ntitle: 'a" + " " * 200_000 + "b'\n---\n#" + " " * 200_000 + "x\n\nbody"
    doc = extract(markdown.encode(), filename="hostile.md", content_type=None)
    assert doc.title == "a b"
    assert [(s.heading_path, s.text) for s in doc.sections] == [(["x"], "body")]


def test_a_soft_wrapped_sentence_is_never_cut_at_its_line_break() -> None:
    # Markdown wraps a long list item or paragraph over lines; those breaks are not where a
    # sentence ends. Split at them, a chunk ended "…two retries, since embedding is" and the
    # offline answer quoted that half sentence.
    items = [
        f"- **`mode{i}`** uses the official client with a {i} s timeout and two retries, since\n"
        f"  embedding number {i} is idempotent. It sends batches of {i} inputs and names the\n"
        "  status of a failure without echoing any text."
        for i in range(12)
    ]
    table = "| setting | default |\n|---|---|\n| `A` | `1` |"
    body = "\n".join([*items, table])
    chunks = chunk(doc_of(Section(["Embeddings"], body)), max_tokens=80, overlap_tokens=0)
    assert len(chunks) > 3
    for c in chunks:
        assert not c.body.rstrip().endswith(("since", "and names the")), c.body
        assert not c.body.lstrip().startswith(("embedding number", "status of")), c.body
    joined = "\n".join(c.body for c in chunks)
    assert "since\n  embedding number 7 is idempotent." in joined  # the text kept as written
    assert "| `A` | `1` |" in joined
