"""A linear pre-scan of HTML for its nesting depth and element count, before any parser sees it.

HTML tree building checks "is there a <p> in button scope" and the like by walking the stack of
open elements, so every block element costs time proportional to its depth: a few MB of nested
`<div>`s cost minutes of CPU (quadratic in depth). This scan costs one pass: it follows start
and end tags with a stack (an end tag closes everything up to its match, as the tree builder
does; an end tag with no open match is ignored), skips comments and raw-text elements, and does
not count void elements or those whose end tag is optional (they close on their own). It stops
at the first limit crossed.
"""

from __future__ import annotations

from collections import Counter

from parley.knowledge.errors import HtmlTooDeep, TooManyElements

_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "keygen",
        "frame",
        "basefont",
        "bgsound",
    ]
)
# Closed implicitly by a sibling or a parent's end: they never nest without their own parent
# (not counted, so sloppy but ordinary markup is never refused).
_SELF_CLOSING = frozenset(
    [
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "optgroup",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "caption",
        "rb",
        "rt",
        "rtc",
        "rp",
        "html",
        "head",
        "body",
        "a",  # a new <a> closes the open one
        "nobr",
    ]
)
_RAW = ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes")
_NAME_END = frozenset(" \t\n\r\f/>")


def check_shape(html: str, *, max_depth: int, max_elements: int) -> None:
    """Raise `HtmlTooDeep` or `TooManyElements`; otherwise return, in time linear in `html`."""
    lower = html.lower()
    n = len(lower)
    stack: list[str] = []
    open_names: Counter[str] = Counter()
    elements = 0
    i = lower.find("<")
    while 0 <= i < n - 1:
        if lower.startswith("<!--", i):
            end = lower.find("-->", i + 4)
            if end < 0:
                return
            i = lower.find("<", end + 3)
            continue
        closing = lower[i + 1] == "/"
        start = i + 2 if closing else i + 1
        j = start
        while j < n and lower[j] not in _NAME_END:
            j += 1
        name = lower[start:j]
        gt = lower.find(">", j)
        if gt < 0:
            return
        if not name or not ("a" <= name[0] <= "z"):
            i = lower.find("<", i + 1)
            continue
        if closing:
            if open_names[name]:
                while stack:
                    top = stack.pop()
                    open_names[top] -= 1
                    if top == name:
                        break
        else:
            elements += 1
            if elements > max_elements:
                raise TooManyElements(f"The HTML has more than {max_elements} elements.")
            if name in _RAW:
                end = lower.find(f"</{name}", gt + 1)
                if end < 0:
                    return
                i = lower.find("<", end + 2)
                continue
            if name not in _VOID and name not in _SELF_CLOSING and lower[gt - 1] != "/":
                stack.append(name)
                open_names[name] += 1
                if len(stack) > max_depth:
                    raise HtmlTooDeep(f"The HTML nests more than {max_depth} elements deep.")
        i = lower.find("<", gt + 1)
