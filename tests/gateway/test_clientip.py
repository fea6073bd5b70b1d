"""Which address the per-IP limits count, behind trusted proxies (HERALD_TRUSTED_PROXIES)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any, cast

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from herald_common.config import ConfigError, load_settings
from herald_common.errors import CloseCode
from herald_gateway.clientip import TrustedProxies, client_address, parse_address, parse_networks
from herald_gateway.server import Gateway

PROXIES = TrustedProxies.parse(["10.0.0.0/8", "192.0.2.10", "2001:db8:ffff::/48"])
NGINX = "10.0.0.5"
CLIENT = "203.0.113.7"


def resolve(peer: str, *headers: str, trusted: TrustedProxies = PROXIES) -> str:
    return client_address(peer, list(headers), trusted)


# The rule -----------------------------------------------------------------------------


def test_nothing_trusted_is_the_peer_whatever_the_header_says() -> None:
    assert resolve(CLIENT, "198.51.100.1", trusted=TrustedProxies()) == CLIENT
    assert resolve(NGINX, "198.51.100.1", trusted=TrustedProxies()) == NGINX
    # Not even parsed: today's behaviour exactly, whatever the socket reports.
    assert resolve("unknown", "garbage", trusted=TrustedProxies()) == "unknown"


def test_an_untrusted_peer_cannot_name_another_client() -> None:
    assert resolve(CLIENT, "198.51.100.1") == CLIENT
    assert resolve(CLIENT, "10.0.0.9") == CLIENT


def test_a_trusted_proxy_names_the_client() -> None:
    assert resolve(NGINX, CLIENT) == CLIENT
    assert resolve("192.0.2.10", CLIENT) == CLIENT


def test_a_trusted_peer_without_the_header_is_itself_the_client() -> None:
    assert resolve(NGINX) == NGINX
    assert resolve(NGINX, "") == NGINX
    assert resolve(NGINX, "  ", " ") == NGINX


def test_trusted_proxies_on_the_right_are_skipped() -> None:
    # client -> CDN-ish proxy 192.0.2.10 -> nginx 10.0.0.5 -> gateway
    assert resolve(NGINX, f"{CLIENT}, 192.0.2.10") == CLIENT
    assert resolve(NGINX, f"{CLIENT},10.1.2.3,192.0.2.10") == CLIENT


def test_what_a_client_prepends_is_never_read() -> None:
    # The client sent "X-Forwarded-For: 198.51.100.1" hoping to be someone else; nginx
    # appended the address it saw.
    assert resolve(NGINX, f"198.51.100.1, {CLIENT}") == CLIENT
    # Claiming to be a trusted proxy does not help either.
    assert resolve(NGINX, f"198.51.100.1, 10.0.0.1, {CLIENT}") == CLIENT
    # Nor garbage, which is left of the address that counts and so never parsed.
    assert resolve(NGINX, f"'; DROP TABLE, unknown, ::::, {CLIENT}") == CLIENT


def test_every_address_trusted_is_the_leftmost() -> None:
    assert resolve(NGINX, "10.9.9.9, 192.0.2.10") == "10.9.9.9"
    assert resolve(NGINX, "10.0.0.1") == "10.0.0.1"


def test_several_headers_are_one_list_in_their_order() -> None:
    assert resolve(NGINX, "198.51.100.1", f"{CLIENT}, 10.0.0.2") == CLIENT
    assert resolve(NGINX, f"{CLIENT}, 10.0.0.2", "198.51.100.1") == "198.51.100.1"
    assert resolve(NGINX, "10.3.3.3", "10.0.0.2") == "10.3.3.3"


@pytest.mark.parametrize(
    "header",
    [
        "unknown",
        "_hidden",
        "client.example.com",
        "203.0.113.7.1",
        "203.0.113.300",
        f"{CLIENT},",  # the nearest entry is empty
        f"{CLIENT},,10.0.0.2",
        f"{CLIENT}, garbage, 10.0.0.2",  # malformed among the entries that must be read
        "203.0.113.7:http",
        "203.0.113.7:99999",
        "[203.0.113.7]",
        "[2001:db8::1",
        "[2001:db8::1]443",
        '"203.0.113.7"',
        "for=203.0.113.7",
        "２０３.０.１１３.７",  # full-width digits
        "\x00",
    ],
)
def test_an_unusable_header_falls_back_to_the_peer(header: str) -> None:
    assert resolve(NGINX, header) == NGINX


def test_malformed_never_raises_on_odd_input() -> None:
    for header in ["," * 1000, "[" * 50, "]" * 50, ":" * 50, "1" * 5000, "\udcff", "%", "[]:", "[]"]:
        assert resolve(NGINX, header) == NGINX


def test_ipv6_clients_and_proxies() -> None:
    proxy = "2001:db8:ffff::1"
    assert resolve(proxy, "2001:db8:1::7") == "2001:db8:1::7"
    assert resolve(proxy, "2001:DB8:1:0:0:0:0:7") == "2001:db8:1::7"  # one key however it is written
    assert resolve(proxy, "[2001:db8:1::7]:51234") == "2001:db8:1::7"
    assert resolve(proxy, "[2001:db8:1::7]") == "2001:db8:1::7"
    assert resolve(proxy, f"{CLIENT}, 2001:db8:ffff::2") == CLIENT
    assert resolve(NGINX, "2001:db8:1::7, 2001:db8:ffff::9") == "2001:db8:1::7"
    assert resolve("2001:db8:1::7", CLIENT) == "2001:db8:1::7"  # untrusted IPv6 peer


def test_ipv4_mapped_addresses_are_their_ipv4_address() -> None:
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    assert resolve("::ffff:10.0.0.5", CLIENT) == CLIENT
    assert resolve(NGINX, "::ffff:203.0.113.7") == CLIENT
    assert resolve(NGINX, f"{CLIENT}, ::ffff:10.0.0.2") == CLIENT
    # An untrusted peer is returned as the socket reported it.
    assert resolve("::ffff:203.0.113.7", "198.51.100.1") == "::ffff:203.0.113.7"


def test_ports_are_dropped() -> None:
    assert resolve(NGINX, "203.0.113.7:51234") == CLIENT
    assert resolve(NGINX, f"{CLIENT}, 10.0.0.2:443") == CLIENT


def test_a_peer_that_is_no_address_is_not_trusted() -> None:
    assert resolve("unknown", CLIENT) == "unknown"
    assert resolve("", CLIENT) == ""


# Parsing ------------------------------------------------------------------------------


def test_parse_address_forms() -> None:
    assert parse_address(" 203.0.113.7 ") == IPv4Address(CLIENT)
    assert parse_address("203.0.113.7:0") == IPv4Address(CLIENT)
    assert parse_address("2001:db8::1") == IPv6Address("2001:db8::1")
    assert parse_address("[2001:db8::1]:65535") == IPv6Address("2001:db8::1")
    assert parse_address("::1") == IPv6Address("::1")
    assert parse_address("[::ffff:203.0.113.7]:80") == IPv4Address(CLIENT)
    assert parse_address("[2001:db8::1]:65536") is None
    assert parse_address("") is None


def test_networks_parse_and_match() -> None:
    trusted = TrustedProxies.parse([" 10.0.0.0/8", "fd00::/8", "127.0.0.1"])
    assert IPv4Address("10.255.255.255") in trusted
    assert IPv4Address("11.0.0.0") not in trusted
    assert IPv4Address("127.0.0.1") in trusted
    assert IPv4Address("127.0.0.2") not in trusted
    assert IPv6Address("fd12::1") in trusted
    assert IPv6Address("fe80::1") not in trusted
    assert IPv6Address("::ffff:10.1.1.1") in trusted
    assert not TrustedProxies.parse([])
    assert TrustedProxies.parse(["::/0"])


@pytest.mark.parametrize("entry", ["nginx", "10.0.0.1/8", "10.0.0.0/33", "300.1.1.1", "fd00::/129", "10.0.0.0/8x"])
def test_bad_networks_are_named(entry: str) -> None:
    with pytest.raises(ValueError, match=entry.replace(".", r"\.")):
        parse_networks(["127.0.0.1", entry])


# The setting --------------------------------------------------------------------------


def test_the_setting_is_a_comma_separated_list() -> None:
    assert load_settings({}).trusted_proxies == []
    settings = load_settings({"HERALD_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32,127.0.0.1"})
    assert settings.trusted_proxies == ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]


@pytest.mark.parametrize("value", ["10.0.0.0/8,nginx", "10.1.2.3/16", "::1/200"])
def test_a_bad_entry_stops_the_start_naming_it(value: str) -> None:
    bad = value.split(",")[-1]
    with pytest.raises(ConfigError, match=r"HERALD_TRUSTED_PROXIES=.*'" + bad.replace(".", r"\.") + "' is not an IP"):
        load_settings({"HERALD_TRUSTED_PROXIES": value})


# The gateway applies it ---------------------------------------------------------------


@dataclass
class Handshake:
    """What the gateway reads from a connection: the peer, the request, and how it answers."""

    peer: str
    forwarded_for: list[str] = field(default_factory=list)
    closed_with: list[int] = field(default_factory=list)

    @property
    def remote_address(self) -> tuple[str, int]:
        return (self.peer, 40000)

    @property
    def request(self) -> Request:
        headers = Headers([("Host", "gateway")] + [("X-Forwarded-For", v) for v in self.forwarded_for])
        return Request("/ws", headers)

    def respond(self, status: int, text: str) -> Response:
        return Response(status, "", Headers(), text.encode())

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with.append(code)


def gateway(**settings: Any) -> Gateway:
    return Gateway(load_settings({}, **settings))


def handshake_status(gw: Gateway, conn: Handshake) -> int:
    response = gw.process_request(cast(Any, conn), conn.request)
    return 101 if response is None else response.status_code


def test_handshake_rate_counts_each_forwarded_client() -> None:
    gw = gateway(trusted_proxies=["127.0.0.1"], connect_rate_per_ip=0.001, connect_burst_per_ip=2)
    alice = [handshake_status(gw, Handshake("127.0.0.1", [f"198.51.100.1, {CLIENT}"])) for _ in range(3)]
    assert alice == [101, 101, 429]
    # Another client behind the same proxy has a bucket of its own...
    assert handshake_status(gw, Handshake("127.0.0.1", ["203.0.113.8"])) == 101
    # ...and so does the proxy itself, for sockets it opens without naming a client.
    assert handshake_status(gw, Handshake("127.0.0.1")) == 101
    # An untrusted peer cannot take someone else's address, nor escape its own.
    assert handshake_status(gw, Handshake("127.0.0.2", ["203.0.113.9"])) == 101
    assert handshake_status(gw, Handshake("127.0.0.2", ["203.0.113.10"])) == 101
    assert handshake_status(gw, Handshake("127.0.0.2", ["203.0.113.11"])) == 429


def test_without_trusted_proxies_every_socket_of_the_proxy_counts_together() -> None:
    gw = gateway(connect_rate_per_ip=0.001, connect_burst_per_ip=2)
    statuses = [handshake_status(gw, Handshake("127.0.0.1", [f"203.0.113.{i}"])) for i in range(3)]
    assert statuses == [101, 101, 429]


async def test_connections_per_ip_count_the_forwarded_client(monkeypatch: pytest.MonkeyPatch) -> None:
    gw = gateway(trusted_proxies=["10.0.0.0/8"], max_connections_per_ip=1)
    served: list[Handshake] = []
    release = asyncio.Event()

    async def serve(ws: Handshake, ip: str) -> None:
        served.append(ws)
        await release.wait()

    monkeypatch.setattr(gw, "_serve", serve)
    first = Handshake(NGINX, [CLIENT])
    holding = asyncio.create_task(gw.handler(cast(Any, first)))
    await asyncio.sleep(0)
    assert served == [first]

    second = Handshake("10.0.0.6", [f"198.51.100.1, {CLIENT}"])  # same client, other proxy
    await gw.handler(cast(Any, second))
    assert second.closed_with == [int(CloseCode.POLICY_LIMIT)]

    other = Handshake(NGINX, ["203.0.113.8"])
    other_task = asyncio.create_task(gw.handler(cast(Any, other)))
    await asyncio.sleep(0)
    assert served == [first, other] and other.closed_with == []

    release.set()
    await asyncio.gather(holding, other_task)
    # The slots are released under the same key they were taken with.
    again = Handshake(NGINX, [CLIENT])
    await gw.handler(cast(Any, again))
    assert again.closed_with == [] and served[-1] is again
