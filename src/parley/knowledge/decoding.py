"""Bytes to text for the text formats: BOM, declared charset, UTF-8, then cp1252/latin-1.

No statistical detection: the fallback chain is deterministic and covers what people
actually upload (UTF-8 from everything modern, cp1252 from older Windows tools). latin-1
decodes any byte string, so decoding itself never fails; binary data is refused earlier.
"""

from __future__ import annotations

import codecs
import re

from parley.knowledge.errors import CorruptFile

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


# Browsers read these labels as windows-1252 (WHATWG Encoding), and so do we.
_WHATWG_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "windows-1252": "cp1252",
}


def declared_charset(content_type: str | None) -> str | None:
    match = _CHARSET_PARAM.search(content_type or "")
    return match.group(1) if match else None


def html_meta_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def looks_binary(data: bytes) -> bool:
    """Many NUL bytes at the start: binary. A stray NUL is merely stripped by cleaning."""
    head = data[:8192]
    return head.count(b"\x00") > max(8, len(head) // 100)


def decode_text(data: bytes, *, declared: str | None = None) -> str:
    """Decode with the first encoding that fits; raise CorruptFile for binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise CorruptFile("The text is not valid in the encoding its BOM declares") from exc
    if looks_binary(data):
        raise CorruptFile("The file contains binary data, not text")
    candidates = [_WHATWG_ALIASES.get(declared.lower(), declared)] if declared else []
    candidates += ["utf-8", "cp1252"]
    for encoding in candidates:
        try:
            codecs.lookup(encoding)
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")
