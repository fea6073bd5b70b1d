"""docker-compose.yml, its nginx and NATS configuration, the Dockerfiles and .dockerignore.

Each check runs on the real files and on a broken copy, to show it can fail.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from herald_common.config import ConfigError
from tests.deploy import checks, nats_checks
from tests.support.procs import nats_server_binary

COMPOSE_TEXT = checks.COMPOSE_FILE.read_text(encoding="utf-8")
NGINX_TEXT = (checks.ROOT / "deploy" / "compose" / "nginx.conf").read_text(encoding="utf-8")
NATS_CONF = checks.ROOT / "deploy" / "compose" / "nats.conf"
DOCKERFILES = {svc: (checks.DOCKER_DIR / f"{svc}.Dockerfile").read_text(encoding="utf-8") for svc in checks.SERVICES}


@pytest.fixture
def compose() -> dict[str, Any]:
    """A fresh parse of docker-compose.yml a test may break."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
    return loaded


def reports(problems: list[str], fragment: str) -> bool:
    return any(fragment in p for p in problems)


# Services ------------------------------------------------------------------------------


def test_compose_has_the_stack(compose: dict[str, Any]) -> None:
    roles = {name: checks.compose_role(name, s) for name, s in compose["services"].items()}
    assert sorted(r for r in roles.values() if r) == ["api", "bridge", "gateway", "gateway"]
    assert set(checks.compose_nats_nodes(compose)) == {"nats-1", "nats-2", "nats-3"}
    images = {checks.image_repository(s.get("image", "")) for s in compose["services"].values()}
    assert {"postgres", "nginx", "jaegertracing/all-in-one"} <= images
    assert compose["services"]["postgres"]["image"].startswith("postgres:16.")
    for name, role in roles.items():
        if role:
            env = checks.compose_env(compose["services"][name])
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
            assert env["HERALD_NATS_REPLICAS"] == "3"
    api_env = checks.compose_env(compose["services"]["api"])
    assert api_env["HERALD_DATABASE_URL"].startswith("postgresql://herald:${POSTGRES_PASSWORD")
    assert api_env["HERALD_DATABASE_URL"].endswith("@postgres:5432/herald")


COMPOSE_CHECKS = [
    checks.check_compose_images,
    checks.check_compose_health,
    checks.check_compose_secrets,
    checks.check_compose_herald,
    checks.check_compose_nats,
    checks.check_compose_client_addresses,
    nats_checks.check_compose_nats_security,
]


@pytest.mark.parametrize("check", COMPOSE_CHECKS, ids=lambda c: c.__name__)
def test_compose_passes(check: Any, compose: dict[str, Any]) -> None:
    assert check(compose) == []


@pytest.mark.parametrize("image", ["nats:latest", "postgres", "nginx:latest"])
def test_unpinned_image_is_reported(compose: dict[str, Any], image: str) -> None:
    compose["services"]["nats-2"]["image"] = image
    assert reports(checks.check_compose_images(compose), "nats-2")


def test_missing_dockerfile_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["bridge"]["build"]["dockerfile"] = "deploy/docker/brdige.Dockerfile"
    assert reports(checks.check_compose_images(compose), "brdige.Dockerfile does not exist")


def test_missing_healthcheck_is_reported(compose: dict[str, Any]) -> None:
    del compose["services"]["jaeger"]["healthcheck"]
    compose["services"]["postgres"]["healthcheck"] = {"disable": True}
    problems = checks.check_compose_health(compose)
    assert reports(problems, "jaeger: no healthcheck")
    assert reports(problems, "postgres: no healthcheck")


def test_depends_on_without_health_condition_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["api"]["depends_on"]["postgres"] = {"condition": "service_started"}
    compose["services"]["bridge"]["depends_on"] = ["nats-1"]
    problems = checks.check_compose_health(compose)
    assert reports(problems, "api: depends on postgres without condition: service_healthy")
    assert reports(problems, "bridge: depends_on without condition")


def test_inline_jwt_secret_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["gateway-2"]["environment"]["HERALD_JWT_SECRET"] = "s3cret"
    assert reports(checks.check_compose_secrets(compose), "gateway-2: HERALD_JWT_SECRET is a literal")


def test_inline_database_password_is_reported(compose: dict[str, Any]) -> None:
    env = compose["services"]["api"]["environment"]
    env["HERALD_DATABASE_URL"] = "postgresql://herald:pw@postgres:5432/herald"
    compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "pw"
    problems = checks.check_compose_secrets(compose)
    assert reports(problems, "api: HERALD_DATABASE_URL holds a literal password")
    assert reports(problems, "postgres: POSTGRES_PASSWORD is a literal")


def test_unknown_setting_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["bridge"]["environment"]["HERALD_NATS_REPLICA"] = "3"
    assert reports(checks.check_compose_herald(compose), "HERALD_NATS_REPLICA is not a Herald setting")


def test_loopback_gateway_is_reported(compose: dict[str, Any]) -> None:
    del compose["services"]["gateway-1"]["environment"]["HERALD_GATEWAY_HOST"]
    assert reports(checks.check_compose_herald(compose), "gateway-1: listens on loopback")


def test_healthcheck_on_wrong_port_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["gateway-2"]["environment"]["HERALD_GATEWAY_METRICS_PORT"] = "9100"
    assert reports(checks.check_compose_herald(compose), "gateway-2: healthcheck does not probe port 9100")


def test_short_gateway_stop_grace_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["gateway-1"]["stop_grace_period"] = "10s"
    assert reports(checks.check_compose_herald(compose), "gateway-1: stop_grace_period shorter")


# NATS ----------------------------------------------------------------------------------


def test_nats_url_missing_a_node_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["api"]["environment"]["HERALD_NATS_URL"] = "nats://nats-1:4222,nats://nats-2:4222"
    assert reports(checks.check_compose_nats(compose), "api: HERALD_NATS_URL names")


def test_missing_nats_node_is_reported(compose: dict[str, Any]) -> None:
    del compose["services"]["nats-3"]
    problems = checks.check_compose_nats(compose)
    assert reports(problems, "2 NATS nodes, want 3")
    assert reports(problems, "but the cluster nodes are")


def test_nats_config_routes_are_checked() -> None:
    config = checks.parse_nats_config(NATS_CONF.read_text(encoding="utf-8"))
    nodes = {"nats-1:6222", "nats-2:6222", "nats-3:6222"}
    assert checks.check_nats_routes(config, nodes) == []
    wrong = dataclasses.replace(config, routes=[*config.routes[:2], "nats://nats-4:6222"])
    assert reports(checks.check_nats_routes(wrong, nodes), "but the cluster nodes are")
    unsynced = dataclasses.replace(config, sync_always=False)
    assert checks.check_nats_routes(unsynced, nodes) == ["NATS JetStream lacks sync_interval: always"]


def test_unmounted_nats_config_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["nats-1"]["volumes"] = ["nats-1-data:/data"]
    assert reports(checks.check_compose_nats(compose), "nats-1: no configuration file mounted")


def test_nats_server_accepts_the_compose_configuration(tmp_path: Path) -> None:
    files = {"nats.conf": NATS_CONF.read_text(encoding="utf-8"), nats_checks.AUTH_INCLUDE: checks.AUTH_FILE.read_text()}
    conf = nats_checks.lay_out_nats_config(files, tmp_path, {"/etc/nats/tls/": "tls"})
    env = {**os.environ, "SERVER_NAME": "nats-1", **nats_checks.example_passwords()}
    result = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env, timeout=20
    )
    assert result.returncode == 0, result.stderr
    del env["NATS_BRIDGE_PASSWORD"]
    missing = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env, timeout=20
    )
    assert missing.returncode != 0 and "NATS_BRIDGE_PASSWORD" in missing.stderr


def test_each_service_uses_its_own_nats_user(compose: dict[str, Any]) -> None:
    compose["services"]["gateway-2"] = {**compose["services"]["gateway-2"]}
    compose["services"]["gateway-2"]["environment"] = {
        **checks.compose_env(compose["services"]["gateway-2"]),
        "HERALD_NATS_USER": "api",
        "HERALD_NATS_PASSWORD": "${NATS_API_PASSWORD:?}",
    }
    problems = nats_checks.check_compose_nats_security(compose)
    assert reports(problems, "gateway-2: HERALD_NATS_USER is 'api', not its own user 'gateway'")
    assert reports(problems, "gateway-2: HERALD_NATS_PASSWORD must be ${NATS_GATEWAY_PASSWORD:?...}")


def test_compose_nats_without_the_shared_users_or_ca_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["nats-2"]["volumes"] = [
        v for v in compose["services"]["nats-2"]["volumes"] if "nats-auth.conf" not in v
    ]
    compose["services"]["nats-3"]["environment"]["NATS_API_PASSWORD"] = "hunter2"
    compose["services"]["bridge"]["volumes"] = []
    problems = nats_checks.check_compose_nats_security(compose)
    assert reports(problems, "nats-2: deploy/k8s/base/nats-auth.conf is not mounted")
    assert reports(problems, "nats-3: NATS_API_PASSWORD must come from the environment")
    assert reports(problems, "bridge: HERALD_NATS_TLS_CA /etc/herald/nats-ca.pem is not mounted")


# Client addresses behind the proxy --------------------------------------------------------


def gateway_env(compose: dict[str, Any]) -> dict[str, Any]:
    env: dict[str, Any] = compose["services"]["gateway-1"]["environment"]
    return env


def test_gateways_trust_only_the_proxy(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    for name in ("gateway-1", "gateway-2"):
        settings = checks.settings_with(checks.compose_env(compose["services"][name]))
        assert settings.trusted_proxies == [proxy]
        # Back to the defaults: the gateways now see each client's own address.
        assert settings.max_connections_per_ip == 200
        assert (settings.connect_rate_per_ip, settings.connect_burst_per_ip) == (50.0, 100)


def test_untrusted_proxy_is_reported(compose: dict[str, Any]) -> None:
    gateway_env(compose)["HERALD_TRUSTED_PROXIES"] = "10.213.57.201"
    problems = checks.check_compose_client_addresses(compose)
    assert reports(problems, "gateway-1: HERALD_TRUSTED_PROXIES does not include the proxy's address 10.213.57.200")
    del gateway_env(compose)["HERALD_TRUSTED_PROXIES"]
    assert reports(checks.check_compose_client_addresses(compose), "gateway-2: HERALD_TRUSTED_PROXIES is empty")


def test_trusting_the_whole_network_is_reported(compose: dict[str, Any]) -> None:
    gateway_env(compose)["HERALD_TRUSTED_PROXIES"] = "10.213.57.0/24"
    problems = checks.check_compose_client_addresses(compose)
    assert reports(problems, "trusts 10.213.57.0/24, which overlaps 10.213.57.0/25")
    assert reports(problems, "trusts the network gateway 10.213.57.1")
    gateway_env(compose)["HERALD_TRUSTED_PROXIES"] = "0.0.0.0/0"
    assert reports(checks.check_compose_client_addresses(compose), "trusts every address (0.0.0.0/0)")


def test_proxy_address_docker_may_hand_out_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["proxy"]["networks"]["default"]["ipv4_address"] = "10.213.57.20"
    gateway_env(compose)["HERALD_TRUSTED_PROXIES"] = "10.213.57.20"
    problems = checks.check_compose_client_addresses(compose)
    assert reports(problems, "proxy: 10.213.57.20 is in the range Docker hands out")
    del compose["networks"]
    problems = checks.check_compose_client_addresses(compose)
    assert reports(problems, "proxy: 10.213.57.20 is not in an explicit subnet")
    del compose["services"]["proxy"]["networks"]
    assert reports(checks.check_compose_client_addresses(compose), "proxy: no fixed ipv4_address")


def test_bad_trusted_proxies_stop_the_check(compose: dict[str, Any]) -> None:
    gateway_env(compose)["HERALD_TRUSTED_PROXIES"] = "proxy"
    with pytest.raises(ConfigError, match="'proxy' is not an IP address"):
        checks.check_compose_client_addresses(compose)


# nginx ---------------------------------------------------------------------------------


def test_nginx_routes(compose: dict[str, Any]) -> None:
    assert checks.check_nginx(checks.parse_nginx(NGINX_TEXT), compose) == []


def test_nginx_parser_rejects_unbalanced_braces() -> None:
    with pytest.raises(ValueError, match="unterminated"):
        checks.parse_nginx("http { server { listen 80; }")


def test_nginx_without_upgrade_headers_is_reported(compose: dict[str, Any]) -> None:
    text = NGINX_TEXT.replace("proxy_set_header Upgrade $http_upgrade;", "")
    text = text.replace("proxy_set_header Connection $connection_upgrade;", "")
    problems = checks.check_nginx(checks.parse_nginx(text), compose)
    assert reports(problems, "/ws does not pass the Upgrade header")
    assert reports(problems, "/ws does not send Connection: upgrade")


def test_nginx_without_forwarded_for_is_reported(compose: dict[str, Any]) -> None:
    line = "never the client's own.\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
    text = NGINX_TEXT.replace(line, "never the client's own.")
    assert text != NGINX_TEXT
    problems = checks.check_nginx(checks.parse_nginx(text), compose)
    assert problems == ["nginx: /ws does not send X-Forwarded-For, which the gateways trust"]
    del gateway_env(compose)["HERALD_TRUSTED_PROXIES"]
    assert checks.check_nginx(checks.parse_nginx(text), compose) == []


def test_nginx_connection_map_must_default_to_upgrade(compose: dict[str, Any]) -> None:
    text = NGINX_TEXT.replace("default upgrade;", "default close;")
    assert reports(checks.check_nginx(checks.parse_nginx(text), compose), "does not send Connection: upgrade")


def test_nginx_upstream_to_unknown_gateway_is_reported(compose: dict[str, Any]) -> None:
    text = NGINX_TEXT.replace("server gateway-2:8080", "server gateway-3:8080")
    assert reports(checks.check_nginx(checks.parse_nginx(text), compose), "not to the gateway services")


def test_nginx_upstream_port_mismatch_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["gateway-1"]["environment"]["HERALD_GATEWAY_PORT"] = "9000"
    problems = checks.check_nginx(checks.parse_nginx(NGINX_TEXT), compose)
    assert reports(problems, "upstream gateway-1:8080 but gateway-1 listens on 9000")


def test_nginx_short_ws_timeout_is_reported(compose: dict[str, Any]) -> None:
    text = NGINX_TEXT.replace("proxy_read_timeout 3600s;", "proxy_read_timeout 60s;")
    assert reports(checks.check_nginx(checks.parse_nginx(text), compose), "/ws proxy_read_timeout below")


def test_nginx_missing_api_route_is_reported(compose: dict[str, Any]) -> None:
    text = NGINX_TEXT.replace("location /schema", "location /docs")
    assert reports(checks.check_nginx(checks.parse_nginx(text), compose), "no location for /schema")


def test_nginx_api_route_to_gateways_is_reported(compose: dict[str, Any]) -> None:
    text = NGINX_TEXT.replace(
        "location = /healthz {\n      proxy_pass http://api;",
        "location = /healthz {\n      proxy_pass http://gateways;",
    )
    assert reports(checks.check_nginx(checks.parse_nginx(text), compose), "/healthz goes to")


# Dockerfiles ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", checks.SERVICES)
def test_dockerfile_passes(service: str) -> None:
    assert checks.check_dockerfile(DOCKERFILES[service], service) == []


def test_dockerfiles_are_the_ones_compose_builds(compose: dict[str, Any]) -> None:
    built = {s["build"]["dockerfile"] for s in compose["services"].values() if "build" in s}
    assert built == {f"deploy/docker/{svc}.Dockerfile" for svc in checks.SERVICES}


def test_python_base_is_pinned_slim_311() -> None:
    for text in DOCKERFILES.values():
        bases = [rest.split()[0] for kw, rest in checks.dockerfile_instructions(text) if kw == "FROM"]
        assert bases and all(b.startswith("python:3.11.") and b.endswith("-slim-bookworm") for b in bases)


@pytest.mark.parametrize(
    ("service", "old", "new", "fragment"),
    [
        ("api", "python:3.11.13-slim-bookworm AS build", "python:latest AS build", "latest"),
        ("gateway", "FROM python:3.11.13-slim-bookworm\n", "FROM python\n", "has no tag"),
        ("api", "USER 10001:10001", "USER root", "runs as root"),
        ("bridge", "USER 10001:10001\n", "", "runs as root"),
        ("gateway", "STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL", "no STOPSIGNAL SIGTERM"),
        ("gateway", "EXPOSE 8080 8081", "EXPOSE 8080", "EXPOSE [8080] but"),
        ("api", "HEALTHCHECK --interval", "# HEALTHCHECK --interval", "no HEALTHCHECK"),
        ("api", "HERALD_API_HOST=0.0.0.0", "HERALD_API_HOST=127.0.0.1", "loopback"),
        ("gateway", "HERALD_GATEWAY_HOST=0.0.0.0", "HERALD_GATEWAY_HST=0.0.0.0", "not a Herald setting"),
        ("bridge", 'CMD ["bridge"]', 'CMD ["gateway"]', "does not run `herald bridge`"),
        ("api", " ./services/bridge ./cli", " ./cli", "does not name ./services/bridge"),
    ],
)
def test_broken_dockerfile_is_reported(service: str, old: str, new: str, fragment: str) -> None:
    text = DOCKERFILES[service]
    assert old in text
    assert reports(checks.check_dockerfile(text.replace(old, new), service), fragment)


def test_dockerignore() -> None:
    text = (checks.ROOT / ".dockerignore").read_text(encoding="utf-8")
    copied = sorted({p for d in DOCKERFILES.values() for p in checks.dockerfile_copies(d)})
    assert "deploy/docker/nats_connected.py" in copied
    required = (".venv", "var", "tests", ".git", ".mypy_cache", "services/api/src/herald_api/__pycache__")
    assert checks.check_dockerignore(text, copied, required) == []
    broken = text.replace("\ntests\n", "\n").replace("**/tests\n", "") + "deploy\n"
    problems = checks.check_dockerignore(broken, copied, required)
    assert reports(problems, "keeps tests in the build context")
    assert reports(problems, "excludes deploy/docker/nats_connected.py")


# The bridge's probe ---------------------------------------------------------------------


def load_probe() -> ModuleType:
    path = checks.DOCKER_DIR / "nats_connected.py"
    spec = importlib.util.spec_from_file_location("nats_connected", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 1 1
   1: 0100007F:D2F0 0100007F:107E {state} 00000000:00000000 00:00000000 00000000 10001        0 2 1
"""


def test_probe_finds_an_established_nats_connection() -> None:
    probe = load_probe()
    assert probe.nats_ports("nats://nats-1:4222, nats://nats-2:4223,nats-3") == {4222, 4223}
    assert probe.connected([TCP.format(state="01")], "nats://nats:4222")
    assert not probe.connected([TCP.format(state="06")], "nats://nats:4222"), "TIME_WAIT is not a connection"
    assert not probe.connected([TCP.format(state="01")], "nats://nats:4223")
    assert not probe.connected([], "nats://nats:4222")


def test_probe_reads_this_machine(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(checks.DOCKER_DIR / "nats_connected.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "HERALD_NATS_URL": "nats://127.0.0.1:1"},
        cwd=tmp_path,
        timeout=20,
    )
    assert result.returncode == 1
    assert "no established connection to NATS" in result.stderr
