"""HTML via selectolax (Lexbor): boilerplate dropped, headings kept as structure.

Scripts, styles, navigation, forms, footers and asides are removed; when the page has one
`<main>` (or else one `<article>`) only that is read, which drops most site chrome.
"""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser, LexborNode

from parley.knowledge.clean import clean_text, one_line
from parley.knowledge.document import ExtractedDocument, Section
from parley.knowledge.errors import EmptyDocument
from parley.knowledge.htmlshape import check_shape

MAX_DEPTH = 256  # PARLEY_INGEST_MAX_HTML_DEPTH
MAX_ELEMENTS = 200_000  # PARLEY_INGEST_MAX_HTML_ELEMENTS

_DROP = (
    "script, style, noscript, template, iframe, object, embed, svg, canvas, math, "
    "nav, footer, aside, form, button, select, dialog, "
    "[role=navigation], [role=contentinfo], [hidden], [aria-hidden=true]"
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "header",
        "hgroup",
        "hr",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "ul",
    }
)
_CELLS = frozenset({"td", "th"})


def extract_html(
    html: str,
    *,
    filename_title: str | None,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
) -> ExtractedDocument:
    check_shape(html, max_depth=max_depth, max_elements=max_elements)  # before the parser
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    page_title = one_line(title_node.text()) if title_node is not None else ""
    for node in tree.css(_DROP):
        node.decompose()
    root = _content_root(tree)
    sections = html_sections(root) if root is not None else []
    if not sections:
        raise EmptyDocument()
    first_heading = next((s.heading_path[0] for s in sections if s.heading_path), None)
    title = page_title or first_heading or filename_title or "Untitled"
    return ExtractedDocument(title=title, sections=sections, format="html")


def _content_root(tree: LexborHTMLParser) -> LexborNode | None:
    for selector in ("main, [role=main]", "article"):
        found = tree.css(selector)
        if len(found) == 1:
            return found[0]
    return tree.body


def html_sections(root: LexborNode) -> list[Section]:
    """Walk the tree iteratively (deeply nested markup must not hit the recursion limit)."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    parts: list[str] = []

    def flush() -> None:
        body = clean_text("".join(parts))
        if body:
            sections.append(Section(heading_path=[h for _, h in path], text=body))
        parts.clear()

    stack: list[tuple[LexborNode, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        tag = node.tag or ""
        if leaving:
            if tag in _BLOCKS:
                parts.append("\n\n")
            elif tag in _CELLS:
                parts.append(" | ")
            elif tag == "tr":
                parts.append("\n")
            continue
        if tag == "-text":
            parts.append(node.text_content or "")
            continue
        if tag in _HEADINGS:
            flush()
            level = _HEADINGS[tag]
            while path and path[-1][0] >= level:
                path.pop()
            heading = one_line(node.text(deep=True))
            if heading:
                path.append((level, heading))
            continue
        if tag == "br":
            parts.append("\n")
            continue
        if tag in _BLOCKS:
            parts.append("\n\n")
        stack.append((node, True))
        children: list[LexborNode] = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, False) for c in reversed(children))
    flush()
    for section in sections:
        section.text = _tidy_cells(section.text)
    return sections


def _tidy_cells(text: str) -> str:
    lines = [line.rstrip().removesuffix("|").rstrip() for line in text.split("\n")]
    return clean_text("\n".join(lines))
