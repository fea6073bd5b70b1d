"""The Kustomize base and the example overlay: schema-valid and consistent.

Each check runs on the real rendering and on a broken copy, to show it can fail.
"""

from __future__ import annotations

import base64
import copy
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import checks, nats_checks
from tests.deploy.checks import Manifest
from tests.support.procs import nats_server_binary

BASE = checks.K8S_DIR / "base"
OVERLAY = checks.K8S_DIR / "overlays" / "example"


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return checks.render_kustomization(BASE)


@pytest.fixture(scope="module")
def overlay() -> list[Manifest]:
    return checks.render_kustomization(OVERLAY)


@pytest.fixture
def broken(overlay: list[Manifest]) -> list[Manifest]:
    """A copy of the overlay's rendering a test may break."""
    return copy.deepcopy(overlay)


def container(objects: list[Manifest], workload: str) -> Manifest:
    for w, _, c in checks.containers(objects):
        if w["metadata"]["name"] == workload:
            return c
    raise LookupError(workload)


def obj(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = checks.find(objects, kind, name)
    assert found is not None, f"{kind}/{name}"
    return found


def reports(problems: list[str], fragment: str) -> bool:
    return any(fragment in p for p in problems)


# The rendering ------------------------------------------------------------------------


def test_base_has_the_expected_objects(base: list[Manifest]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in base}
    assert kinds >= {
        ("StatefulSet", "nats"),
        ("Service", "nats"),
        ("Service", "nats-headless"),
        ("ConfigMap", "nats-config"),
        ("ConfigMap", "herald-config"),
        ("Deployment", "api"),
        ("Service", "api"),
        ("Deployment", "bridge"),
        ("Deployment", "gateway"),
        ("Service", "gateway"),
        ("HorizontalPodAutoscaler", "gateway"),
        ("PodDisruptionBudget", "gateway"),
        ("Ingress", "herald"),
        ("NetworkPolicy", "nats"),
    }
    assert not [o for o in base if o["kind"] == "Secret"], "the base must not carry a Secret"


def test_overlay_applies_namespace_images_replicas_and_secret(overlay: list[Manifest]) -> None:
    assert all(o["metadata"].get("namespace") == "herald" for o in overlay if o["kind"] != "Namespace")
    assert obj(overlay, "Deployment", "gateway")["spec"]["replicas"] == 3
    assert obj(overlay, "Deployment", "api")["spec"]["replicas"] == 3
    assert container(overlay, "gateway")["image"] == "ghcr.io/herald/gateway:0.1.0"
    secret = obj(overlay, "Secret", "herald-secrets")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(values) == {"HERALD_JWT_SECRET", "HERALD_DATABASE_URL"}
    assert all("example" in v for v in values.values()), "the overlay's Secret must be an obvious example"
    nats = obj(overlay, "Secret", "nats-auth")
    passwords = {k: base64.b64decode(v).decode() for k, v in nats["data"].items()}
    assert set(passwords) == {f"{s}-password" for s in checks.NATS_SERVICES}
    assert all("example" in v for v in passwords.values()), "the overlay's Secret must be an obvious example"


def test_renderer_refuses_features_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\npatches:\n  - path: x.yaml\n")
    with pytest.raises(checks.RenderError, match="patches"):
        checks.render_kustomization(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("secretGenerator:\n  - name: s\n    literals: [A=b]\n")
    with pytest.raises(checks.RenderError, match="disableNameSuffixHash"):
        checks.render_kustomization(tmp_path)


def test_renderer_sets_image_tags() -> None:
    rule = {"name": "ghcr.io/herald/api", "newTag": "9.9.9"}
    assert checks._set_image("ghcr.io/herald/api:0.1.0", rule) == "ghcr.io/herald/api:9.9.9"
    assert checks._set_image("ghcr.io/herald/gateway:0.1.0", rule) == "ghcr.io/herald/gateway:0.1.0"


# Schemas ------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("schema validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.usefixtures("no_network")
def test_base_and_overlay_match_the_kubernetes_schemas(base: list[Manifest], overlay: list[Manifest]) -> None:
    assert checks.check_schemas(base) == []
    assert checks.check_schemas(overlay) == []


@pytest.mark.usefixtures("no_network")
def test_schema_check_reports_a_typo(broken: list[Manifest]) -> None:
    container(broken, "gateway")["readinesProbe"] = container(broken, "gateway").pop("readinessProbe")
    obj(broken, "Service", "api")["spec"]["ports"][0]["port"] = "eight thousand"
    problems = checks.check_schemas(broken)
    assert reports(problems, "readinesProbe")
    assert reports(problems, "Service/api")


# Container hygiene ---------------------------------------------------------------------

CheckFn = Callable[[list[Manifest]], list[str]]

ALL_CHECKS: list[CheckFn] = [
    checks.check_probes,
    checks.check_resources,
    checks.check_images,
    checks.check_secret_env,
    checks.check_security,
    checks.check_ports,
    checks.check_ingress,
    checks.check_gateway_scaling,
    checks.check_graceful_shutdown,
    checks.check_nats_k8s,
    nats_checks.check_k8s_nats_security,
]

#: Checks the base alone cannot pass: it leaves these to overlays.
OVERLAY_CHECKS: list[CheckFn] = [checks.check_secret_refs, checks.check_client_addresses]


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_base_passes(check: CheckFn, base: list[Manifest]) -> None:
    assert check(base) == []


@pytest.mark.parametrize("check", [*ALL_CHECKS, *OVERLAY_CHECKS], ids=lambda c: c.__name__)
def test_overlay_passes(check: CheckFn, overlay: list[Manifest]) -> None:
    assert check(overlay) == []


def test_setting_names_are_settings(base: list[Manifest], overlay: list[Manifest]) -> None:
    for objects in (base, overlay):
        names = list(checks.env_names(objects))
        assert any(name == "HERALD_NATS_URL" for _, name in names)
        assert checks.check_setting_names(names) == []


def test_unknown_setting_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "ConfigMap", "herald-config")["data"]["HERALD_GATEWAY_PROT"] = "8080"
    assert reports(checks.check_setting_names(list(checks.env_names(broken))), "HERALD_GATEWAY_PROT")


def test_missing_probe_is_reported(broken: list[Manifest]) -> None:
    del container(broken, "bridge")["livenessProbe"]
    assert reports(checks.check_probes(broken), "bridge has no livenessProbe")


def test_missing_limit_is_reported(broken: list[Manifest]) -> None:
    del container(broken, "api")["resources"]["limits"]["memory"]
    assert reports(checks.check_resources(broken), "no memory in resources.limits")


@pytest.mark.parametrize("image", ["ghcr.io/herald/gateway:latest", "ghcr.io/herald/gateway", "nats"])
def test_unpinned_image_is_reported(broken: list[Manifest], image: str) -> None:
    container(broken, "gateway")["image"] = image
    assert reports(checks.check_images(broken), "gateway")


def test_registry_port_is_not_a_tag() -> None:
    assert checks.image_problem("registry.local:5000/herald/api") is not None
    assert checks.image_problem("registry.local:5000/herald/api:0.1.0") is None
    assert checks.image_problem("nats@sha256:" + "0" * 64) is None


def test_inline_secret_is_reported(broken: list[Manifest]) -> None:
    env = container(broken, "gateway")["env"]
    env[0] = {"name": "HERALD_JWT_SECRET", "value": "hunter2"}
    assert reports(checks.check_secret_env(broken), "HERALD_JWT_SECRET is a literal value")


def test_secret_in_config_map_is_reported(broken: list[Manifest]) -> None:
    data = obj(broken, "ConfigMap", "herald-config")["data"]
    data["HERALD_DATABASE_URL"] = "postgresql://herald:pw@db:5432/herald"
    assert reports(checks.check_secret_env(broken), "HERALD_DATABASE_URL looks secret")


def test_credentials_in_any_literal_are_reported(broken: list[Manifest]) -> None:
    container(broken, "bridge").setdefault("env", []).append({"name": "X_URL", "value": "nats://u:p@nats:4222"})
    assert reports(checks.check_secret_env(broken), "X_URL is a literal value")


def test_dangling_secret_reference_is_reported(broken: list[Manifest]) -> None:
    container(broken, "api")["env"][1]["valueFrom"]["secretKeyRef"]["key"] = "HERALD_DB"
    assert reports(checks.check_secret_refs(broken), "no Secret herald-secrets with key HERALD_DB")


def test_root_container_is_reported(broken: list[Manifest]) -> None:
    pod = obj(broken, "Deployment", "api")["spec"]["template"]["spec"]
    del pod["securityContext"]["runAsNonRoot"]
    container(broken, "api")["securityContext"]["readOnlyRootFilesystem"] = False
    problems = checks.check_security(broken)
    assert reports(problems, "may run as root")
    assert reports(problems, "writable root filesystem")


# Ports ---------------------------------------------------------------------------------


def test_port_setting_out_of_line_with_container_port_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "ConfigMap", "herald-config")["data"]["HERALD_GATEWAY_METRICS_PORT"] = "9090"
    problems = checks.check_ports(broken)
    assert reports(problems, "container ports [8080, 8081] but the service listens on [8080, 9090]")
    assert reports(problems, "should GET /readyz on port 9090")


def test_default_port_applies_when_not_configured(broken: list[Manifest]) -> None:
    del obj(broken, "ConfigMap", "herald-config")["data"]["HERALD_API_PORT"]
    assert checks.check_ports(broken) == []
    container(broken, "api")["ports"][0]["containerPort"] = 8001
    assert reports(checks.check_ports(broken), "but the service listens on [8000]")


def test_loopback_host_is_reported(broken: list[Manifest]) -> None:
    del obj(broken, "ConfigMap", "herald-config")["data"]["HERALD_GATEWAY_HOST"]
    assert reports(checks.check_ports(broken), "listens on loopback 127.0.0.1")


def test_probe_on_unknown_port_is_reported(broken: list[Manifest]) -> None:
    container(broken, "gateway")["livenessProbe"]["httpGet"]["port"] = "admin"
    assert reports(checks.check_ports(broken), "livenessProbe port 'admin' is not a container port")


def test_gateway_probe_on_websocket_port_is_reported(broken: list[Manifest]) -> None:
    container(broken, "gateway")["readinessProbe"]["httpGet"]["port"] = "ws"
    assert reports(checks.check_ports(broken), "readinessProbe should GET /readyz on port 8081")


def test_service_target_port_mismatch_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "Service", "gateway")["spec"]["ports"][0]["targetPort"] = 8090
    assert reports(checks.check_ports(broken), "targetPort 8090 is not a port of Deployment/gateway")


def test_service_selecting_nothing_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "Service", "api")["spec"]["selector"] = {"app.kubernetes.io/name": "apii"}
    assert reports(checks.check_ports(broken), "Service/api selects no workload")


def test_ingress_to_missing_service_port_is_reported(broken: list[Manifest]) -> None:
    ingress = obj(broken, "Ingress", "herald")
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {"name": "websocket"}
    assert reports(checks.check_ports(broken), "Service gateway has no port")


# Routing, scaling, shutdown ------------------------------------------------------------


def test_ws_routed_to_api_is_reported(broken: list[Manifest]) -> None:
    paths = obj(broken, "Ingress", "herald")["spec"]["rules"][0]["http"]["paths"]
    ws = next(p for p in paths if p["path"] == "/ws")
    ws["backend"]["service"] = {"name": "api", "port": {"name": "http"}}
    assert reports(checks.check_ingress(broken), "routes /ws to Service api, not to the gateway pods")


def test_missing_api_route_is_reported(broken: list[Manifest]) -> None:
    paths = obj(broken, "Ingress", "herald")["spec"]["rules"][0]["http"]["paths"]
    paths[:] = [p for p in paths if p["path"] != "/api"]
    assert reports(checks.check_ingress(broken), "no Ingress routes /api")


def test_short_websocket_timeout_is_reported(broken: list[Manifest]) -> None:
    annotations = obj(broken, "Ingress", "herald")["metadata"]["annotations"]
    del annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]
    assert reports(checks.check_ingress(broken), "proxy-read-timeout below")


def test_ws_path_follows_the_gateway_path_setting(broken: list[Manifest]) -> None:
    obj(broken, "ConfigMap", "herald-config")["data"]["HERALD_GATEWAY_PATH"] = "/socket"
    assert reports(checks.check_ingress(broken), "no Ingress routes /socket")


def test_hpa_on_wrong_target_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "HorizontalPodAutoscaler", "gateway")["spec"]["scaleTargetRef"]["name"] = "api"
    assert reports(checks.check_gateway_scaling(broken), "no HorizontalPodAutoscaler targets Deployment/gateway")


def test_pdb_not_selecting_gateways_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "PodDisruptionBudget", "gateway")["spec"]["selector"]["matchLabels"] = {"app": "gw"}
    assert reports(checks.check_gateway_scaling(broken), "no PodDisruptionBudget selects the gateway pods")


def test_grace_period_shorter_than_drain_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "Deployment", "gateway")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 20
    assert reports(checks.check_graceful_shutdown(broken), "terminationGracePeriodSeconds 20 < 31.0")


def test_missing_pre_stop_is_reported(broken: list[Manifest]) -> None:
    del container(broken, "gateway")["lifecycle"]
    assert reports(checks.check_graceful_shutdown(broken), "preStop sleep 0.0s")


# NATS ----------------------------------------------------------------------------------


def test_nats_route_to_missing_pod_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "StatefulSet", "nats")["spec"]["replicas"] = 5
    assert reports(checks.check_nats_k8s(broken), "but the cluster nodes are")


def test_nats_without_sync_always_is_reported(broken: list[Manifest]) -> None:
    config = obj(broken, "ConfigMap", "nats-config")["data"]
    config["nats.conf"] = config["nats.conf"].replace("sync_interval: always", "sync_interval: 2m")
    assert reports(checks.check_nats_k8s(broken), "sync_interval: always")


def test_nats_store_off_the_volume_is_reported(broken: list[Manifest]) -> None:
    del obj(broken, "StatefulSet", "nats")["spec"]["volumeClaimTemplates"]
    assert reports(checks.check_nats_k8s(broken), "store_dir is not on a volumeClaimTemplate")


def test_herald_nats_settings_are_checked(broken: list[Manifest]) -> None:
    data = obj(broken, "ConfigMap", "herald-config")["data"]
    data["HERALD_NATS_REPLICAS"] = "5"
    data["HERALD_NATS_URL"] = "nats://nats:4223"
    problems = checks.check_nats_k8s(broken)
    assert reports(problems, "HERALD_NATS_REPLICAS=5 but only 3 NATS nodes")
    assert reports(problems, "nats://nats:4223 is not a NATS Service port")


def test_nats_server_accepts_the_configuration(tmp_path: Path, base: list[Manifest]) -> None:
    data = obj(base, "ConfigMap", "nats-config")["data"]
    conf = nats_checks.lay_out_nats_config(data, tmp_path, {"/etc/nats-tls/": "tls"})
    env = {**os.environ, "POD_NAME": "nats-0", **nats_checks.example_passwords()}
    result = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env, timeout=20
    )
    assert result.returncode == 0, result.stderr
    conf.write_text(conf.read_text().replace("sync_interval: always", "sync_interval: always always"))
    bad = subprocess.run([nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, env=env, timeout=20)
    assert bad.returncode != 0


def test_nats_config_is_generated_from_the_files() -> None:
    data = obj(checks.render_kustomization(BASE), "ConfigMap", "nats-config")["data"]
    assert data["nats-auth.conf"] == checks.AUTH_FILE.read_text(encoding="utf-8")
    assert nats_checks.check_auth_file(data["nats-auth.conf"]) == []


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('include "nats-auth.conf"', "", "authorization is not exactly"),
        ("    verify: true\n", "", "routes lack mutual TLS"),
        ("tls {\n  cert_file", "tls_off {\n  cert_file", "not required to use TLS"),
    ],
)
def test_nats_config_without_tls_or_users_is_reported(
    broken: list[Manifest], old: str, new: str, fragment: str
) -> None:
    data = obj(broken, "ConfigMap", "nats-config")["data"]
    assert old in data["nats.conf"]
    data["nats.conf"] = data["nats.conf"].replace(old, new, 1)
    assert reports(nats_checks.check_k8s_nats_security(broken), fragment)


def test_auth_file_problems_are_reported() -> None:
    text = checks.AUTH_FILE.read_text(encoding="utf-8")
    assert reports(nats_checks.check_auth_file(text.replace('"live.>"', '">"')), "allows every subject")
    assert reports(
        nats_checks.check_auth_file(text.replace("$NATS_API_PASSWORD", "$NATS_PASSWORD")), "NATS_API_PASSWORD"
    )
    assert reports(nats_checks.check_auth_file(text.replace("user: bridge", "user: relay")), "one per service")


def test_a_service_with_another_services_nats_user_is_reported(broken: list[Manifest]) -> None:
    for item in container(broken, "bridge")["env"]:
        if item["name"] == "HERALD_NATS_USER":
            item["value"] = "api"
        if item["name"] == "HERALD_NATS_PASSWORD":
            item["valueFrom"]["secretKeyRef"]["key"] = "api-password"
    problems = nats_checks.check_k8s_nats_security(broken)
    assert reports(problems, "HERALD_NATS_USER is 'api', not 'bridge'")
    assert reports(problems, "HERALD_NATS_PASSWORD is not the Secret key")


def test_a_service_without_the_ca_is_reported(broken: list[Manifest]) -> None:
    gateway = container(broken, "gateway")
    gateway["volumeMounts"] = [m for m in gateway["volumeMounts"] if m["name"] != "nats-ca"]
    assert reports(nats_checks.check_k8s_nats_security(broken), "HERALD_NATS_TLS_CA /etc/herald/nats/ca.crt is not on")


def test_nats_password_as_a_literal_is_reported(broken: list[Manifest]) -> None:
    nats = container(broken, "nats")
    nats["env"] = [e for e in nats["env"] if e["name"] != "NATS_GATEWAY_PASSWORD"]
    nats["env"].append({"name": "NATS_GATEWAY_PASSWORD", "value": "hunter2"})
    assert reports(nats_checks.check_k8s_nats_security(broken), "NATS_GATEWAY_PASSWORD must come from a secretKeyRef")
    assert reports(checks.check_secret_env(broken), "NATS_GATEWAY_PASSWORD is a literal value")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda p: p["spec"]["ingress"][0].pop("from"), "admits every pod"),
        (lambda p: p["spec"]["ingress"][0]["from"].append({"podSelector": {}}), "empty podSelector"),
        (
            lambda p: p["spec"]["ingress"][0]["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}}),
            "admits more than",
        ),
        (
            lambda p: p["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"].append("nats"),
            "client port 4222 is reachable from ['api', 'bridge', 'gateway', 'nats']",
        ),
        (lambda p: p["spec"]["ingress"][1].pop("ports"), "port 8222 is reachable"),
        (lambda p: p.update(kind="Removed"), "no NetworkPolicy restricts"),
    ],
)
def test_network_policy_problems_are_reported(
    broken: list[Manifest], change: Callable[[Manifest], Any], fragment: str
) -> None:
    change(obj(broken, "NetworkPolicy", "nats"))
    assert reports(nats_checks.check_k8s_nats_security(broken), fragment), nats_checks.check_k8s_nats_security(broken)


# Client addresses ----------------------------------------------------------------------


def test_overlay_trusts_the_ingress_controller_pods(overlay: list[Manifest]) -> None:
    env, _ = checks.container_env(overlay, container(overlay, "gateway"))
    settings = checks.settings_with(env)
    assert settings.trusted_proxies == ["10.244.0.0/16"]
    # The per-IP limits are the defaults again: they count clients, not controller pods.
    assert settings.max_connections_per_ip == 200
    assert (settings.connect_rate_per_ip, settings.connect_burst_per_ip) == (50.0, 100)


def test_base_leaves_the_trusted_proxies_to_overlays(base: list[Manifest]) -> None:
    assert obj(base, "ConfigMap", "herald-config")["data"]["HERALD_TRUSTED_PROXIES"] == ""
    assert reports(checks.check_client_addresses(base), "behind an Ingress with HERALD_TRUSTED_PROXIES empty")


def test_trusting_everyone_is_reported(broken: list[Manifest]) -> None:
    obj(broken, "ConfigMap", "herald-config")["data"]["HERALD_TRUSTED_PROXIES"] = "10.0.0.0/8,::/0"
    assert reports(checks.check_client_addresses(broken), "trusts every address (::/0)")


def test_renderer_merges_and_creates_config_maps(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {A: '1', B: '2'}\n"
    )
    (tmp_path / "base" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [base]\ngeneratorOptions: {disableNameSuffixHash: true}\nconfigMapGenerator:\n"
        "  - {name: c, behavior: merge, literals: [B=3, C=4]}\n  - {name: d, literals: [E=5]}\n"
    )
    objects = checks.render_kustomization(tmp_path)
    assert obj(objects, "ConfigMap", "c")["data"] == {"A": "1", "B": "3", "C": "4"}
    assert obj(objects, "ConfigMap", "d")["data"] == {"E": "5"}
    (tmp_path / "base" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(checks.RenderError, match="no ConfigMap of that name to merge"):
        checks.render_kustomization(tmp_path)
