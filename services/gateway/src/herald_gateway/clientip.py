"""The client address of a WebSocket connection, seen through trusted reverse proxies.

Pure functions: the gateway passes the socket's peer address and the request's
``X-Forwarded-For`` values and gets back the address its per-IP limits count
(``HERALD_TRUSTED_PROXIES``). The rule:

1. No trusted proxies configured, or the peer is not one of them: the peer address,
   exactly as the socket reports it. Headers from an untrusted peer are never read.
2. The peer is a trusted proxy: the ``X-Forwarded-For`` values, joined in the order the
   headers came, are read from the right. Addresses of trusted proxies are skipped; the
   first one that is not trusted is the client. A client can put anything in the header
   it sends, but a proxy only appends to it, so everything left of that address is the
   client's own claim and is never looked at.
3. Every address reached from the right is trusted: the leftmost one.
4. No ``X-Forwarded-For``, or an entry reached from the right that is not an address
   (empty, ``unknown``, a host name, garbage): the header is unusable and the peer
   address counts.

An entry is an IPv4 or IPv6 address, optionally with a port (``192.0.2.1:443``,
``[2001:db8::1]:443``) or brackets (``[2001:db8::1]``), as some proxies write them. An
IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is the IPv4 address it carries, for
matching and as the result, so one client has one key however it is written.

``Forwarded`` (RFC 7239) is not read: nginx and ingress-nginx write ``X-Forwarded-For``
and pass a client's ``Forwarded`` through untouched, so reading it would let clients
choose their own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

#: The header a trusted proxy writes the client's address to.
FORWARDED_FOR = "X-Forwarded-For"


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The networks of ``entries`` (addresses or CIDR networks, IPv4 or IPv6).

    Raises ValueError naming the first entry that is neither (a network with host bits
    set, such as ``10.0.0.1/8``, is refused rather than guessed at).
    """
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip()))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network ({exc})") from None
    return tuple(networks)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_address(text: str) -> IPAddress | None:
    """The address in one header entry, or None when it is not one.

    Accepts ``ADDR``, ``[IPV6]``, ``[IPV6]:PORT`` and ``IPV4:PORT``; surrounding
    whitespace is ignored.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and _is_port(rest[1:]))):
            return None
        try:
            return _unmapped(IPv6Address(host))
        except ValueError:
            return None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _is_port(port):
            return None
        text = host
    try:
        return _unmapped(ipaddress.ip_address(text))
    except ValueError:
        return None


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535


class TrustedProxies:
    """The networks whose sockets may name their client in ``X-Forwarded-For``."""

    __slots__ = ("_v4", "_v6")

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        self._v4 = tuple(n for n in networks if isinstance(n, IPv4Network))
        self._v6 = tuple(n for n in networks if isinstance(n, IPv6Network))

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """From ``HERALD_TRUSTED_PROXIES`` entries; ValueError names a bad one."""
        return cls(parse_networks(entries))

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

    def __contains__(self, address: IPAddress) -> bool:
        address = _unmapped(address)
        networks: tuple[IPNetwork, ...] = self._v4 if isinstance(address, IPv4Address) else self._v6
        return any(address in network for network in networks)


def client_address(peer: str, forwarded_for: Sequence[str], trusted: TrustedProxies) -> str:
    """The address the per-IP limits count for a socket from ``peer``.

    ``forwarded_for`` holds the values of every ``X-Forwarded-For`` header of the
    request, in order. See the module's docstring for the rule; this never raises.
    """
    if not trusted:
        return peer
    peer_address = parse_address(peer)
    if peer_address is None or peer_address not in trusted:
        return peer
    entries = ",".join(forwarded_for).split(",")
    if not any(entry.strip() for entry in entries):
        return peer
    leftmost = peer_address
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            return peer
        if address not in trusted:
            return str(address)
        leftmost = address
    # Every address is a trusted proxy's: the leftmost is the nearest thing to a client.
    return str(leftmost)
