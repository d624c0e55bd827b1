"""Origin allowlists for widget channels.

An entry is an exact origin (`https://shop.example.com`, `http://localhost:8000`) or an HTTPS
wildcard for subdomains (`https://*.example.com`, which does not match the apex itself).
Origins are compared normalised: lower-case scheme and host, default ports dropped.
"""

from __future__ import annotations

import re
from functools import cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

_HOST = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidOrigin(ValueError):
    pass


def normalise(origin: str) -> str | None:
    """`scheme://host[:port]` in canonical form, or None when it is not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if host.startswith("[") or ":" in host:
        host_part = f"[{host.strip('[]')}]"
    elif _HOST.match(host):
        host_part = host
    else:
        return None
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host_part}:{port}"
    return f"{scheme}://{host_part}"


@cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List snapshot shipped inside the `publicsuffixlist` wheel (read from
    the package, never fetched: the package only downloads when its updater is run)."""
    return PublicSuffixList()


def validate_entry(entry: str) -> str:
    """Check an allowlist entry and return its canonical form. A wildcard over a public
    suffix (`https://*.co.uk`, `https://*.github.io`) would admit every site under it."""
    text = entry.strip()
    if text.lower().startswith("https://*."):
        base = normalise("https://" + text[len("https://*.") :])
        if base is None or base.count(".") < 1:
            raise InvalidOrigin(f"{entry!r} is not a valid wildcard origin")
        host = urlsplit(base).hostname or ""
        if _public_suffixes().is_public(host):
            raise InvalidOrigin(f"{entry!r}: {host} is a public suffix; name your own domain")
        return "https://*." + base[len("https://") :]
    if "*" in text:
        raise InvalidOrigin(f"{entry!r}: wildcards are only allowed as https://*.domain")
    canonical = normalise(text)
    if canonical is None:
        raise InvalidOrigin(f"{entry!r} is not an origin (scheme://host[:port], no path)")
    return canonical


def is_allowed(origin: str | None, allowlist: list[str]) -> bool:
    if not origin:
        return False
    canonical = normalise(origin)
    if canonical is None:
        return False
    for entry in allowlist:
        if entry.startswith("https://*."):
            suffix = entry[len("https://*") :]  # ".example.com[:port]"
            if canonical.startswith("https://") and canonical.endswith(suffix):
                label = canonical[len("https://") : -len(suffix)]
                if label and "/" not in label and ":" not in label:
                    return True
        elif canonical == entry:
            return True
    return False
