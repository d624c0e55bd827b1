"""The extracted form of any source: a title and ordered sections with their heading path.

Extraction produces it, chunking consumes it. Sections keep the structure (heading path) so
chunks can carry their headings, and the page so citations can name it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from parley.knowledge.clean import clean_text
from parley.knowledge.errors import EmptyDocument


@dataclass(slots=True)
class Section:
    """A run of text under one heading path (outermost first); `page` is 1-based or None.

    `atomic` sections (FAQ pairs) are never split and never merged with neighbours.
    Paragraphs inside `text` are separated by a blank line.
    """

    heading_path: list[str]
    text: str
    page: int | None = None
    atomic: bool = False


@dataclass(slots=True)
class ExtractedDocument:
    title: str
    sections: list[Section]
    format: str
    page_count: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All section text, for previews and whole-document statistics."""
        return "\n\n".join(s.text for s in self.sections if s.text)


def faq_document(pairs: Iterable[tuple[str, str]], *, title: str = "FAQ") -> ExtractedDocument:
    """FAQ pairs: one atomic section per pair ("Q: …\\nA: …"), headed by the question."""
    sections: list[Section] = []
    for question, answer in pairs:
        q = " ".join(clean_text(question).split())
        a = clean_text(answer).strip()
        if not q or not a:
            continue
        sections.append(Section(heading_path=[], text=f"Q: {q}\nA: {a}", atomic=True))
    if not sections:
        raise EmptyDocument("No FAQ pair has both a question and an answer")
    return ExtractedDocument(title=title, sections=sections, format="faq")
