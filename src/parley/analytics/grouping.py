"""Grouping visitors' questions by meaning, for knowledge gaps.

One pass, leader-style: questions in order join the group whose centroid is most similar
(cosine) if it is similar enough, else start a group. With embeddings the vectors are the
embedder's; without, TF-IDF over normalised word stems of the questions being grouped (so a
word every question shares weighs nothing). Deterministic for the same input.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

LEXICAL_THRESHOLD = 0.3
DENSE_THRESHOLD = 0.6

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "for",
        "from",
        "get",
        "got",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "should",
        "so",
        "some",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "too",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "there's",
        "i'm",
        "it's",
        "can't",
        "don't",
        "does'nt",
        "tell",
        "know",
        "want",
        "need",
        "like",
    ]
)


def stem(word: str) -> str:
    """A crude suffix strip: enough for plurals and -ing/-ed forms to meet."""
    for suffix in ("ings", "ing", "ies", "ied", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            root = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return root + "y"
            if suffix in ("ings", "ing", "ed") and len(root) > 2 and root[-1] == root[-2]:
                return root[:-1]  # shipping → ship
            return root
    return word


def terms(text: str) -> list[str]:
    words = (w.lower() for w in _WORD.findall(text))
    return [stem(w) for w in words if w not in STOPWORDS and not w.isdigit()]


Vector = dict[str, float]


def tfidf(texts: Sequence[str]) -> list[Vector]:
    """Unit-length TF-IDF vectors of the texts (idf over these texts)."""
    docs = [Counter(terms(t)) for t in texts]
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d.keys())
    n = len(docs)
    out = []
    for d in docs:
        v = {t: (1 + math.log(c)) * math.log(1 + n / df[t]) for t, c in d.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        out.append({t: x / norm for t, x in v.items()})
    return out


def dense(vectors: Sequence[Sequence[float]]) -> list[Vector]:
    """Dense vectors in the same sparse shape (index → value)."""
    return [{str(i): float(x) for i, x in enumerate(v) if x} for v in vectors]


def _dot(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(x * b.get(k, 0.0) for k, x in a.items())


@dataclass
class Group:
    members: list[int] = field(default_factory=list)
    total: Vector = field(default_factory=dict)

    def similarity(self, v: Vector) -> float:
        norm = math.sqrt(sum(x * x for x in self.total.values())) or 1.0
        return _dot(v, self.total) / norm

    def add(self, index: int, v: Vector) -> None:
        self.members.append(index)
        for k, x in v.items():
            self.total[k] = self.total.get(k, 0.0) + x


def group(vectors: Sequence[Vector], threshold: float) -> list[list[int]]:
    """Indexes of the input, grouped; groups in order of their first member."""
    groups: list[Group] = []
    for i, v in enumerate(vectors):
        if not v:
            groups.append(Group([i], {}))
            continue
        best, score = None, threshold
        for g in groups:
            s = g.similarity(v)
            if s >= score:
                best, score = g, s
        if best is None:
            best = Group()
            groups.append(best)
        best.add(i, v)
    return [g.members for g in groups]
