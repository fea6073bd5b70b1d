"""NATS as deployed: per-service users with least-privilege permissions, TLS, no anonymous access.

A real nats-server runs with the permissions Compose and Kubernetes use
(``deploy/k8s/base/nats-auth.conf``, copied next to the test's configuration because
nats-server resolves includes relative to the including file) and TLS from a throwaway CA.
The real api, bridge and gateway processes then run with their own credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError

from herald_common.config import load_settings
from herald_common.natsconn import connect_options
from herald_common.streams import EVENTS_STREAM, TOPICS_STREAM
from tests.deploy.certs import Authority
from tests.deploy.checks import AUTH_FILE, NATS_SERVICES
from tests.deploy.nats_checks import password_variable
from tests.support.natsclients import connect_nats
from tests.support.procs import free_port, nats_server_binary, wait_for_port
from tests.support.stack import Stack, client, token

pytestmark = pytest.mark.integration


@dataclass
class SecureNats:
    """nats-server with the deployments' users and permissions, TLS on clients and routes."""

    folder: Path
    authority: Authority
    passwords: dict[str, str] = field(default_factory=lambda: {s: secrets.token_hex(16) for s in NATS_SERVICES})
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        # tls://, as Compose and Kubernetes name NATS: the client insists on TLS.
        return f"tls://127.0.0.1:{self.port}"

    def start(self) -> None:
        leaf = self.authority.issue("nats")
        shutil.copy(AUTH_FILE, self.folder / AUTH_FILE.name)
        conf = self.folder / "nats.conf"
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{self.folder / "js"}" }}\n'
            f'tls {{ cert_file: "{leaf.cert}", key_file: "{leaf.key}", ca_file: "{self.authority.ca}", timeout: 2 }}\n'
            f'authorization {{ include "{AUTH_FILE.name}" }}\n'
        )
        env = {password_variable(s): p for s, p in self.passwords.items()}
        log = open(self.folder / "nats.log", "wb")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(conf)], env=env, stdout=log, stderr=log)
        log.close()
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def env(self, service: str) -> dict[str, str]:
        """The settings ``service`` runs with: its own user and the CA."""
        return {
            "HERALD_NATS_USER": service,
            "HERALD_NATS_PASSWORD": self.passwords[service],
            "HERALD_NATS_TLS_CA": str(self.authority.ca),
        }


@pytest.fixture
def secure_nats(tmp_path: Path) -> Iterator[SecureNats]:
    server = SecureNats(tmp_path / "nats", Authority(tmp_path / "ca"))
    server.folder.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Errors:
    """What the server told a client asynchronously (permission violations arrive this way)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.seen.append(str(exc))

    async def wait_for(self, fragment: str, timeout: float = 3.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in self.seen:
                if fragment.lower() in text.lower():
                    return text
            await asyncio.sleep(0.02)
        raise AssertionError(f"no error containing {fragment!r}; saw {self.seen}")


async def _connect(server: SecureNats, service: str, errors: Errors | None = None) -> Client:
    settings = load_settings(server.env(service))
    return await connect_nats(
        server.url,
        allow_reconnect=False,
        connect_timeout=3,
        error_cb=(errors or Errors()).record,
        **connect_options(settings, service),
    )


async def _refused(server: SecureNats, **options: object) -> str:
    errors = Errors()
    try:
        nc = await connect_nats(server.url, allow_reconnect=False, connect_timeout=3, error_cb=errors.record, **options)
    except (TimeoutError, NatsError, OSError) as exc:
        return f"{exc!r} {errors.seen}"
    await nc.close()
    raise AssertionError("nats-server let the client in")


def test_a_client_without_credentials_is_refused(secure_nats: SecureNats) -> None:
    async def scenario() -> None:
        settings = load_settings({"HERALD_NATS_TLS_CA": str(secure_nats.authority.ca)})
        tls = connect_options(settings, "api")["tls"]
        anonymous = await _refused(secure_nats, tls=tls)
        assert "authorization" in anonymous.lower(), anonymous
        wrong = await _refused(secure_nats, tls=tls, user="gateway", password="not-the-password")
        assert "authorization" in wrong.lower(), wrong

    asyncio.run(scenario())


def test_a_client_that_does_not_trust_the_ca_is_refused(secure_nats: SecureNats, tmp_path: Path) -> None:
    other = Authority(tmp_path / "other-ca", "Not Herald's CA")
    settings = load_settings({**secure_nats.env("api"), "HERALD_NATS_TLS_CA": str(other.ca)})

    async def scenario() -> None:
        text = await _refused(secure_nats, **connect_options(settings, "api"))
        assert "certificate" in text.lower(), text

    asyncio.run(scenario())


def test_the_gateway_cannot_write_events_and_the_api_cannot_read_live(secure_nats: SecureNats) -> None:
    async def scenario() -> None:
        gateway_errors, api_errors, bridge_errors = Errors(), Errors(), Errors()
        api = await _connect(secure_nats, "api", api_errors)
        gateway = await _connect(secure_nats, "gateway", gateway_errors)
        bridge = await _connect(secure_nats, "bridge", bridge_errors)
        try:
            js = api.jetstream()
            from herald_common.streams import ensure_streams

            await ensure_streams(js, load_settings({}))
            before = (await js.stream_info(EVENTS_STREAM)).state.messages

            # A gateway (it faces the internet) forging a domain event: refused, nothing stored.
            await gateway.publish("events.message.sent", b'{"forged":true}')
            await gateway.flush()
            await gateway_errors.wait_for('permissions violation for publish to "events.message.sent"')
            assert (await js.stream_info(EVENTS_STREAM)).state.messages == before

            # ...nor reading another service's replies, nor answering membership questions.
            await gateway.subscribe("_INBOX.api.>")
            await gateway_errors.wait_for('permissions violation for subscription to "_INBOX.api.>"')
            await gateway.subscribe("herald.rpc.membership")
            await gateway_errors.wait_for("permissions violation for subscription")

            # The api reading every topic's live messages: refused, and it receives nothing.
            received: list[bytes] = []

            async def collect(msg: object) -> None:
                received.append(getattr(msg, "data", b""))

            await api.subscribe("live.>", cb=collect)
            await api_errors.wait_for('permissions violation for subscription to "live.>"')
            await bridge.publish("topics.news.sport", b"1")
            await bridge.flush()
            await asyncio.sleep(0.3)
            assert received == []
            assert (await js.stream_info(TOPICS_STREAM)).state.messages == 1

            # The api publishing to topics directly (bypassing the bridge): refused.
            await api.publish("topics.news.sport", b"2")
            await api.flush()
            await api_errors.wait_for('permissions violation for publish to "topics.news.sport"')

            # The bridge deleting a stream: refused (no one may; streams are declared, never dropped).
            with pytest.raises(NatsError):
                await bridge.jetstream().delete_stream(TOPICS_STREAM)
            assert (await js.stream_info(TOPICS_STREAM)).state.messages == 1
        finally:
            for nc in (api, gateway, bridge):
                await nc.close()

    asyncio.run(scenario())


def test_every_service_works_with_its_own_credentials(secure_nats: SecureNats, tmp_path: Path) -> None:
    """api, bridge and gateway as real processes: a POST reaches a socket, channel membership
    is asked over NATS, history is replayed from the stream, and no permission is missing."""
    stack = Stack(secure_nats, tmp_path / "stack")
    try:
        stack.start_api(**secure_nats.env("api"))
        stack.start_bridge(**secure_nats.env("bridge"))
        gw = stack.start_gateway(**secure_nats.env("gateway"))
        alice, bob = f"alice-{secrets.token_hex(3)}", f"bob-{secrets.token_hex(3)}"
        channel = stack.post("/api/channels", {"name": "ops"}, token(alice))
        assert channel.status_code == 201, channel.text
        channel_id = channel.json()["id"]
        member = httpx.put(
            f"{stack.api_url}/api/channels/{channel_id}/members/{bob}",
            headers={"Authorization": f"Bearer {token(alice)}"},
            timeout=10,
        )
        assert member.status_code in (200, 201, 204), member.text

        with client(gw.url, bob) as ws:
            assert ws.subscribe(f"messages.user.{bob}")["type"] == "subscribed"
            # A channel topic: the gateway asks the api over NATS whether bob is a member.
            assert ws.subscribe(f"messages.channel.{channel_id}")["type"] == "subscribed"
            direct = stack.post("/api/messages", {"content": "direct", "recipientId": bob}, token(alice))
            assert direct.status_code == 201, direct.text
            in_channel = stack.post("/api/messages", {"content": "channel", "channelId": channel_id}, token(alice))
            assert in_channel.status_code == 201, in_channel.text
            got = {m["data"]["content"]: m for m in ws.messages(2)}
            assert set(got) == {"direct", "channel"}
            first = got["direct"]

        # A message missed while away is replayed on reconnect with `since` (from the stream,
        # through a consumer the gateway creates).
        missed = stack.post("/api/messages", {"content": "missed", "recipientId": bob}, token(alice))
        assert missed.status_code == 201, missed.text
        with client(gw.url, bob) as ws:
            since = {"offset": first["offset"], "epoch": first["epoch"]}
            assert ws.subscribe(f"messages.user.{bob}", since=since) == {
                "type": "subscribed",
                "topic": f"messages.user.{bob}",
                "recovered": True,
            }
            assert [m["data"]["content"] for m in ws.messages(1)] == ["missed"]
            # Presence over REST: the api asks the gateway over NATS, which answers (bob's
            # subscription counts a few milliseconds after its replay).
            deadline = time.monotonic() + 5
            while True:
                presence = httpx.get(
                    f"{stack.api_url}/api/topics/messages.user.{bob}/presence",
                    headers={"Authorization": f"Bearer {token(bob)}"},
                    timeout=10,
                )
                assert presence.status_code == 200, presence.text
                if presence.json()["count"] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert presence.json()["users"] == [{"userId": bob, "connections": 1}]

        # The api reads the same history for REST.
        history = httpx.get(
            f"{stack.api_url}/api/topics/messages.user.{bob}/history",
            headers={"Authorization": f"Bearer {token(bob)}"},
            timeout=10,
        )
        assert history.status_code == 200, history.text
        assert "direct" in json.dumps(history.json())

        # The operator endpoints: heartbeats reach the api, the gateway answers its requests.
        admin = {"Authorization": f"Bearer {token('ops', 'admin')}"}
        deadline = time.monotonic() + 15
        services: set[str] = set()
        while services != {"api", "bridge", "gateway"} and time.monotonic() < deadline:
            nodes = httpx.get(f"{stack.api_url}/api/nodes", headers=admin, timeout=10).json()["nodes"]
            services = {n["service"] for n in nodes}
            time.sleep(0.2)
        assert services == {"api", "bridge", "gateway"}
        with client(gw.url, bob) as ws:
            assert ws.subscribe(f"messages.user.{bob}")["type"] == "subscribed"
            topics = httpx.get(f"{stack.api_url}/api/topics", params={"search": bob}, headers=admin, timeout=10)
            assert [t["topic"] for t in topics.json()["items"]] == [f"messages.user.{bob}"]
            assert topics.json()["items"][0]["lastOffset"] is not None
            conns = httpx.get(f"{stack.api_url}/api/users/{bob}/connections", headers=admin, timeout=10)
            assert len(conns.json()["connections"]) == 1
            gone = httpx.post(f"{stack.api_url}/api/users/{bob}/disconnect", headers=admin, timeout=10)
            assert gone.json()["closed"] == 1

        logs = stack.logs() + (secure_nats.folder / "nats.log").read_text(errors="replace")
        assert "permissions violation" not in logs.lower(), logs
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()


def test_cluster_routes_need_a_certificate_from_the_ca(tmp_path: Path) -> None:
    """Two nodes whose routes use mutual TLS form a cluster; a node without a CA-signed
    certificate is not let in."""
    authority = Authority(tmp_path / "ca")
    stranger_ca = Authority(tmp_path / "stranger-ca", "Someone else")
    ports = [free_port() for _ in range(3)]
    route_ports = [free_port() for _ in range(3)]
    procs: list[subprocess.Popen[bytes]] = []

    def node(i: int, ca: Authority) -> subprocess.Popen[bytes]:
        leaf = ca.issue(f"n{i}")
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports[:2])
        conf = tmp_path / f"n{i}.conf"
        conf.write_text(
            f'server_name: "n{i}"\n'
            f'listen: "127.0.0.1:{ports[i]}"\n'
            f'http: "127.0.0.1:{free_port()}"\n'
            f'cluster {{ name: "herald", listen: "127.0.0.1:{route_ports[i]}", routes: [{routes}]\n'
            f'  tls {{ cert_file: "{leaf.cert}", key_file: "{leaf.key}", ca_file: "{ca.ca}", verify: true,'
            " timeout: 2 } }\n"
        )
        return subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def route_count(port: int) -> int:
        nc = await connect_nats(f"nats://127.0.0.1:{port}", allow_reconnect=False, connect_timeout=2)
        try:
            return len(nc.servers) - 1
        finally:
            await nc.close()

    try:
        procs = [node(0, authority), node(1, authority), node(2, stranger_ca)]
        for i, port in enumerate(ports):
            wait_for_port(port, proc=procs[i])
        deadline = time.monotonic() + 10
        counts = (0, 0, 0)
        while time.monotonic() < deadline:
            counts = tuple(asyncio.run(route_count(p)) for p in ports)  # type: ignore[assignment]
            if counts[0] >= 1 and counts[1] >= 1:
                break
            time.sleep(0.2)
        # n0 and n1 know each other (each lists the other as a server to reconnect to);
        # the stranger knows no one and no one knows it.
        assert counts[0] == 1 and counts[1] == 1, counts
        time.sleep(1)
        assert asyncio.run(route_count(ports[2])) == 0
        assert asyncio.run(route_count(ports[0])) == 1
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
