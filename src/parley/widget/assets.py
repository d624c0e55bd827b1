"""The widget's JavaScript, minified (rjsmin) and gzipped once per process, with an ETag.

Minifying at load time keeps the repository free of build artefacts and Node tooling; the
result is cached, so serving costs a dictionary lookup.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

import rjsmin

FILES = ("parley.js", "ui.js", "voice.js")  # voice.js: loaded on the first press of talk


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    gzipped: bytes
    etag: str
    content_type: str


def _build(name: str) -> Asset:
    source = resources.files("parley.widget").joinpath("static", name).read_text("utf-8")
    body = rjsmin.jsmin(source).encode("utf-8")
    gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    return Asset(name, body, gzipped, etag, "application/javascript; charset=utf-8")


@cache
def load_assets() -> dict[str, Asset]:
    return {name: _build(name) for name in FILES}


def weights() -> dict[str, int]:
    """Gzipped sizes in bytes (the P1 benchmark and the size test read these)."""
    return {name: len(asset.gzipped) for name, asset in load_assets().items()}
