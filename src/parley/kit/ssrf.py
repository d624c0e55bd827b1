"""Outbound URL checks: no private, loopback, link-local, multicast or reserved targets unless
`PARLEY_OUTBOUND_ALLOW_PRIVATE` is set. Every address a host name resolves to is checked
(IPv4-mapped IPv6 forms included), so a DNS name cannot smuggle an internal address in."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from parley.kit.errors import Unprocessable


class UnsafeUrl(Unprocessable):
    code = "unsafe_url"
    title = "This URL points somewhere Parley may not connect to"


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_blocked_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for any address an outbound call may not reach (IPv4-mapped forms unwrapped)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and ip.teredo is not None:
            embedded = ip.teredo[1]
        if embedded is not None:
            return is_blocked_address(embedded)
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


async def check_url(
    url: str, *, allow_private: bool, schemes: tuple[str, ...] = ("https", "http")
) -> str:
    """Validate `url` for an outbound call; returns it normalised (no trailing slash)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("The URL cannot be parsed.") from exc
    if parts.scheme not in schemes or not parts.hostname:
        raise UnsafeUrl(f"Only {', '.join(schemes)} URLs with a host are allowed.")
    if parts.username or parts.password:
        raise UnsafeUrl("Credentials in the URL are not allowed.")
    if allow_private:
        return url.strip().rstrip("/")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname,
            port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )
    except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid IDNA name
        raise UnsafeUrl("The host name does not resolve.") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if is_blocked_address(address):
            raise UnsafeUrl("The host resolves to a private or reserved address.")
    return url.strip().rstrip("/")
