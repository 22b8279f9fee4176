"""The client's IP address behind reverse proxies, for rate limiting and logs. Pure.

`X-Forwarded-For` is written by whoever sends the request, so it is believed only as far as it was
appended by proxies we trust (`server.trusted_proxies`, addresses or CIDR networks): starting from
the TCP peer and walking the header right to left, every hop that is a trusted proxy hands over to
the address it reported; the first address not trusted is the client. Anything a client puts at
the left of the header therefore never wins over what our own proxy saw.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Final

__all__ = ["client_ip", "is_loopback", "parse_ip", "rate_limit_key"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_FORWARDED_HOPS: Final = 32
"""Hops of X-Forwarded-For examined at most (bounded work for a hostile header)."""

IPV6_RATE_LIMIT_PREFIX: Final = 64


def parse_ip(value: str) -> IPAddress | None:
    """Parse an address as proxies write it, or `None`.

    Accepts `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]` and `[::1]:443`; drops an IPv6 zone (`%eth0`);
    turns IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as dual-stack sockets report) into plain IPv4, so one
    client has one key whichever way it arrived.
    """
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    text = text.partition("%")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=16)
def _networks(trusted_proxies: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for entry in trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"server.trusted_proxies: {entry!r} is not an address or network"
            ) from None
    return tuple(networks)


def _trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_ip(peer: str, forwarded_for: str | None, trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: `peer` unless it is a trusted proxy, else the nearest untrusted hop.

    `forwarded_for` is the X-Forwarded-For value (several headers joined with ","). If every hop
    is trusted, the leftmost one is the client. A hop that is not an IP address ends the walk at the
    last trusted hop, which then counts as the client: the chain past garbage proves nothing. The
    result is canonical (`parse_ip`); a `peer` that is not an IP address (e.g. a Unix socket) is
    returned as given. Raises `ValueError` for a malformed `trusted_proxies` entry.
    """
    current = parse_ip(peer)
    if current is None:
        return peer
    networks = _networks(trusted_proxies)
    if not networks or not forwarded_for or not _trusted(current, networks):
        return str(current)
    hops = forwarded_for.rsplit(",", MAX_FORWARDED_HOPS)[-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            break
        current = address
        if not _trusted(current, networks):
            break
    return str(current)


def is_trusted_proxy(peer: str, trusted_proxies: tuple[str, ...]) -> bool:
    """Whether `peer` is one of `trusted_proxies` (so what its headers say may be believed)."""
    address = parse_ip(peer)
    return address is not None and _trusted(address, _networks(trusted_proxies))


def is_loopback(ip: str) -> bool:
    """Whether `ip` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped loopback)."""
    address = parse_ip(ip)
    return address is not None and address.is_loopback


def rate_limit_key(ip: str) -> str:
    """The key per-IP limits count under: the IPv4 address, or the IPv6 /64 one subscriber holds.

    Not an IP address: the text itself (it still identifies one peer).
    """
    address = parse_ip(ip)
    if address is None:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_RATE_LIMIT_PREFIX), strict=False)
        return str(network)
    return str(address)
