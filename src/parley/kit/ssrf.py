"""Outbound URL checks: no private, loopback, link-local, multicast or reserved targets unless
`PARLEY_OUTBOUND_ALLOW_PRIVATE` is set. Every address a host name resolves to is checked
(IPv4-mapped IPv6 forms included), so a DNS name cannot smuggle an internal address in."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
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


# One message for every refused destination, whether the name does not resolve or resolves to
# a private address: the difference would let a tenant map the internal network.
UNSAFE_TARGET = "The URL points somewhere Parley may not connect to."

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _excepted(address: Address, exceptions: Sequence[Network]) -> bool:
    return any(address.version == n.version and address in n for n in exceptions)


async def resolve_checked(host: str, port: int, exceptions: Sequence[Network] = ()) -> list[str]:
    """Every address `host` resolves to right now, or `UnsafeUrl` if any of them is blocked
    (or none exists). `exceptions` are networks the operator allowed
    (`PARLEY_OUTBOUND_ALLOWED_NETWORKS`)."""
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid IDNA name
            raise UnsafeUrl(UNSAFE_TARGET) from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses or any(
        is_blocked_address(a) and not _excepted(a, exceptions) for a in addresses
    ):
        raise UnsafeUrl(UNSAFE_TARGET)
    return list(dict.fromkeys(str(a) for a in addresses))


async def check_url(
    url: str,
    *,
    allow_private: bool,
    schemes: tuple[str, ...] = ("https", "http"),
    allowed_networks: Sequence[str] = (),
) -> str:
    """Validate `url` when it is saved (early feedback); returns it normalised (no trailing
    slash). The check that counts is the one when a connection is made
    (`kit.outbound_guard`)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("The URL cannot be parsed.") from exc
    if parts.scheme not in schemes or not parts.hostname:
        raise UnsafeUrl(f"Only {', '.join(schemes)} URLs with a host are allowed.")
    if parts.username or parts.password:
        raise UnsafeUrl("Credentials in the URL are not allowed.")
    if not allow_private:
        await resolve_checked(
            parts.hostname,
            port or (443 if parts.scheme == "https" else 80),
            [ipaddress.ip_network(n) for n in allowed_networks],
        )
    return url.strip().rstrip("/")
