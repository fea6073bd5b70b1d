"""Checks of the deployment files: Kubernetes manifests, docker-compose.yml, Dockerfiles.

Every ``check_*`` function takes parsed data and returns a list of problems (empty when
fine), so a test can feed it a deliberately broken copy and see the problem reported.
``render_kustomization`` is a small renderer for the Kustomize features the manifests
use; it refuses any feature it does not implement instead of ignoring it.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import ipaddress
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import yaml

from herald_common.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKER_DIR = ROOT / "deploy" / "docker"
#: The NATS users and their permissions: the one copy, included by Compose's and
#: Kubernetes' nats-server configurations.
AUTH_FILE = K8S_DIR / "base" / "nats-auth.conf"
#: Herald's services, each a NATS user of that name.
NATS_SERVICES = ("api", "bridge", "gateway")

#: Kubernetes version whose schemas (shipped with kubernetes-validate) the manifests must match.
K8S_VERSION = "1.31.0"

Manifest = dict[str, Any]
Problems = list[str]

HERALD_PREFIX = "HERALD_"
SETTING_NAMES = frozenset(HERALD_PREFIX + name.upper() for name in Settings.__struct_fields__)
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|DATABASE_URL", re.IGNORECASE)
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"})
SERVICES = ("api", "gateway", "bridge")
LOCAL_PACKAGES = ("libs/common", "services/api", "services/gateway", "services/bridge", "cli")


def settings_with(env: Mapping[str, str]) -> Settings:
    """The settings a service would run with: defaults overridden by the HERALD_* in ``env``
    (other names are left to :func:`check_setting_names`)."""
    return load_settings({k: str(v) for k, v in env.items() if k in SETTING_NAMES})


def expected_ports(service: str, settings: Settings) -> set[int]:
    """The TCP ports a Herald service listens on with these settings."""
    if service == "api":
        return {settings.api_port}
    if service == "gateway":
        return {settings.gateway_port} | ({settings.gateway_metrics_port} if settings.gateway_metrics_port else set())
    if service == "bridge":
        return {settings.bridge_metrics_port} if settings.bridge_metrics_port else set()
    return set()


def listen_host(service: str, settings: Settings) -> str:
    """The address a Herald service binds its listeners to."""
    return {"gateway": settings.gateway_host, "bridge": settings.bridge_host}.get(service, settings.api_host)


def health_port(service: str, settings: Settings) -> int:
    """The port that answers /healthz and /readyz for a Herald service."""
    if service == "gateway":
        return settings.gateway_metrics_port
    if service == "bridge":
        return settings.bridge_metrics_port
    return settings.api_port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it carries a tag (not latest) or digest."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the latest tag"
    return None


def image_repository(image: str) -> str:
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


# Kustomize ----------------------------------------------------------------------------


class RenderError(Exception):
    """The kustomization uses something this renderer does not implement."""


_KUSTOMIZATION_KEYS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "images",
        "replicas",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
    }
)


def load_documents(path: Path) -> list[Manifest]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise RenderError(f"{path}: line without '=': {line!r}")
        values[key.strip()] = value
    return values


def _check_generator(kind: str, spec: Mapping[str, Any], allowed: set[str], options: Mapping[str, Any]) -> None:
    unknown = set(spec) - allowed
    if unknown:
        raise RenderError(f"{kind} keys not supported: {sorted(unknown)}")
    unknown_options = set(options) - {"disableNameSuffixHash", "labels"}
    if unknown_options:
        raise RenderError(f"generatorOptions keys not supported: {sorted(unknown_options)}")
    if not options.get("disableNameSuffixHash"):
        raise RenderError(f"{kind} needs generatorOptions.disableNameSuffixHash (no name rewriting here)")


def _generate_secret(directory: Path, spec: Mapping[str, Any], options: Mapping[str, Any]) -> Manifest:
    _check_generator("secretGenerator", spec, {"name", "envs", "literals", "type"}, options)
    values = _generator_values(directory, spec)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec["name"], **({"labels": dict(options["labels"])} if "labels" in options else {})},
        "type": spec.get("type", "Opaque"),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def _generator_values(directory: Path, spec: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for entry in spec.get("files", []):
        key, sep, path = str(entry).partition("=")
        file = (directory / (path if sep else key)).resolve()
        if not file.is_relative_to(directory.resolve()):
            raise RenderError(f"{entry}: kustomize loads files only from inside {directory}")
        values[key if sep else file.name] = file.read_text(encoding="utf-8")
    for env in spec.get("envs", []):
        values.update(_env_file(directory / env))
    for literal in spec.get("literals", []):
        key, _, value = str(literal).partition("=")
        values[key] = value
    return values


def _generate_config_map(
    directory: Path, spec: Mapping[str, Any], options: Mapping[str, Any], objects: list[Manifest]
) -> Manifest | None:
    """A new ConfigMap (behavior create), or None after merging into / replacing the data
    of the one of that name the resources hold."""
    _check_generator("configMapGenerator", spec, {"name", "envs", "literals", "files", "behavior"}, options)
    values = _generator_values(directory, spec)
    behavior = spec.get("behavior", "create")
    existing = find(objects, "ConfigMap", spec["name"])
    if behavior == "create":
        if existing is not None:
            raise RenderError(f"configMapGenerator {spec['name']}: already exists (use behavior merge or replace)")
        metadata = {"name": spec["name"], **({"labels": dict(options["labels"])} if "labels" in options else {})}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": values}
    if behavior not in ("merge", "replace"):
        raise RenderError(f"configMapGenerator {spec['name']}: unknown behavior {behavior!r}")
    if existing is None:
        raise RenderError(f"configMapGenerator {spec['name']}: no ConfigMap of that name to {behavior}")
    existing["data"] = {**existing.get("data", {}), **values} if behavior == "merge" else values
    return None


def _set_image(image: str, rule: Mapping[str, Any]) -> str:
    if image_repository(image) != rule["name"]:
        return image
    name = rule.get("newName", rule["name"])
    if "digest" in rule:
        return f"{name}@{rule['digest']}"
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    tag = rule.get("newTag", last.split(":", 1)[1] if ":" in last else None)
    return f"{name}:{tag}" if tag is not None else name


def render_kustomization(directory: Path) -> list[Manifest]:
    """The objects ``kustomize build directory`` produces, for the features used here."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - _KUSTOMIZATION_KEYS
    if unknown:
        raise RenderError(f"{directory}: kustomization keys not supported: {sorted(unknown)}")
    objects: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        objects.extend(render_kustomization(path) if path.is_dir() else load_documents(path))
    options = kustomization.get("generatorOptions", {})
    objects = copy.deepcopy(objects)
    for spec in kustomization.get("configMapGenerator", []):
        generated = _generate_config_map(directory, spec, options, objects)
        if generated is not None:
            objects.append(generated)
    for spec in kustomization.get("secretGenerator", []):
        objects.append(_generate_secret(directory, spec, options))
    for rule in kustomization.get("images", []):
        for _, pod in pod_specs(objects):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                container["image"] = _set_image(container["image"], rule)
    for rule in kustomization.get("replicas", []):
        matched = [o for o in objects if o["kind"] in WORKLOAD_KINDS and o["metadata"]["name"] == rule["name"]]
        if not matched:
            raise RenderError(f"replicas: no workload named {rule['name']!r}")
        for obj in matched:
            obj["spec"]["replicas"] = rule["count"]
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


# Kubernetes ---------------------------------------------------------------------------


def pod_specs(objects: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(workload, pod spec) for every workload."""
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            yield obj, obj["spec"]["template"]["spec"]


def containers(objects: list[Manifest]) -> Iterator[tuple[Manifest, Manifest, Manifest]]:
    """(workload, pod spec, container) for every container of every workload."""
    for workload, pod in pod_specs(objects):
        for container in pod.get("containers", []):
            yield workload, pod, container


def where(workload: Manifest, container: Manifest) -> str:
    return f"{workload['kind']}/{workload['metadata']['name']} container {container['name']}"


def find(objects: list[Manifest], kind: str, name: str) -> Manifest | None:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    return None


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_schemas(objects: list[Manifest], version: str = K8S_VERSION) -> Problems:
    """Validate every object against the Kubernetes OpenAPI schemas (strict: no unknown fields)."""
    problems = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{name}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{name}: {exc.message}")
    return problems


def check_probes(objects: list[Manifest]) -> Problems:
    problems = []
    for workload, _, container in containers(objects):
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                problems.append(f"{where(workload, container)} has no {probe}")
    return problems


def check_resources(objects: list[Manifest]) -> Problems:
    problems = []
    for workload, _, container in containers(objects):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    problems.append(f"{where(workload, container)} has no {resource} in resources.{kind}")
    return problems


def check_images(objects: list[Manifest]) -> Problems:
    problems = []
    for workload, pod in pod_specs(objects):
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            problem = image_problem(container.get("image", ""))
            if problem:
                problems.append(f"{where(workload, container)}: {problem}")
    return problems


def _credentials_in(value: str) -> bool:
    return "://" in value and bool(urlsplit(value).password)


def check_secret_env(objects: list[Manifest]) -> Problems:
    """Secret-looking settings come from Secrets, never from literal values or ConfigMaps."""
    problems = []
    for workload, _, container in containers(objects):
        for env in container.get("env", []):
            name = env["name"]
            if "value" in env and (SECRET_NAME.search(name) or _credentials_in(str(env["value"]))):
                problems.append(f"{where(workload, container)}: {name} is a literal value, use a secretKeyRef")
            value_from = env.get("valueFrom", {})
            if SECRET_NAME.search(name) and "value" not in env and "secretKeyRef" not in value_from:
                problems.append(f"{where(workload, container)}: {name} must come from a secretKeyRef")
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            for key, value in obj.get("data", {}).items():
                if SECRET_NAME.search(key) or _credentials_in(str(value)):
                    problems.append(f"ConfigMap/{obj['metadata']['name']}: {key} looks secret; put it in a Secret")
    return problems


def check_secret_refs(objects: list[Manifest]) -> Problems:
    """Every secretKeyRef/secretRef names a Secret (and key) that the rendering contains."""
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    problems = []
    for workload, _, container in containers(objects):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secret = secrets.get(ref["name"])
                keys = set(secret.get("data", {})) | set(secret.get("stringData", {})) if secret else set()
                if secret is None or ref["key"] not in keys:
                    problems.append(f"{where(workload, container)}: no Secret {ref['name']} with key {ref['key']}")
        for source in container.get("envFrom", []):
            ref = source.get("secretRef")
            if ref and ref["name"] not in secrets:
                problems.append(f"{where(workload, container)}: no Secret {ref['name']}")
    return problems


def check_security(objects: list[Manifest]) -> Problems:
    problems = []
    for workload, pod, container in containers(objects):
        ctx = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        if ctx.get("runAsNonRoot") is not True:
            problems.append(f"{where(workload, container)} may run as root (runAsNonRoot)")
        if ctx.get("runAsUser") == 0:
            problems.append(f"{where(workload, container)} runs as uid 0")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where(workload, container)} allows privilege escalation")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where(workload, container)} has a writable root filesystem")
    return problems


def container_env(objects: list[Manifest], container: Manifest) -> tuple[dict[str, str], Problems]:
    """The literal environment of a container: ConfigMaps from envFrom, then env values."""
    env: dict[str, str] = {}
    problems = []
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            config_map = find(objects, "ConfigMap", ref["name"])
            if config_map is None:
                problems.append(f"container {container['name']}: no ConfigMap {ref['name']}")
            else:
                env.update({k: str(v) for k, v in config_map.get("data", {}).items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
    return env, problems


def env_names(objects: list[Manifest]) -> Iterator[tuple[str, str]]:
    """(where, variable name) for every variable a container gets, from any source."""
    for workload, _, container in containers(objects):
        for item in container.get("env", []):
            yield where(workload, container), item["name"]
        for source in container.get("envFrom", []):
            for kind, ref_key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                ref = source.get(ref_key)
                obj = find(objects, kind, ref["name"]) if ref else None
                if obj is not None:
                    for key in list(obj.get("data", {})) + list(obj.get("stringData", {})):
                        yield f"{where(workload, container)} via {kind}/{ref['name']}", key
    for obj in objects:
        if obj["kind"] in ("ConfigMap", "Secret"):
            for key in obj.get("data", {}):
                yield f"{obj['kind']}/{obj['metadata']['name']}", key


def check_setting_names(names: list[tuple[str, str]]) -> Problems:
    """Every HERALD_* name is a field of herald_common.config.Settings (services refuse others)."""
    return [
        f"{place}: {name} is not a Herald setting"
        for place, name in names
        if name.startswith(HERALD_PREFIX) and name not in SETTING_NAMES
    ]


def herald_service(container: Manifest) -> str | None:
    """Which Herald service a container runs (from its image), or None for other software."""
    name = image_repository(container.get("image", "")).rsplit("/", 1)[-1]
    return name if name in SERVICES and "herald" in container.get("image", "") else None


def _port_number(container: Manifest, port: int | str) -> int | None:
    if isinstance(port, int):
        return port if any(p["containerPort"] == port for p in container.get("ports", [])) else None
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    return None


def _probe_port(probe: Mapping[str, Any]) -> int | str | None:
    for kind in ("httpGet", "tcpSocket", "grpc"):
        if kind in probe:
            port: int | str = probe[kind]["port"]
            return port
    return None


def check_ports(objects: list[Manifest]) -> Problems:
    """Container ports, probes, Services and the Ingress agree with each other and with the
    HERALD_* port settings each service runs with."""
    problems = []
    for workload, _, container in containers(objects):
        place = where(workload, container)
        declared = {int(p["containerPort"]) for p in container.get("ports", [])}
        for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = container.get(probe_name)
            port = _probe_port(probe) if probe else None
            if port is not None and _port_number(container, port) is None:
                problems.append(f"{place}: {probe_name} port {port!r} is not a container port")
        service = herald_service(container)
        if service is None:
            continue
        env, env_problems = container_env(objects, container)
        problems.extend(env_problems)
        settings = settings_with(env)
        wanted = expected_ports(service, settings)
        if declared != wanted:
            problems.append(f"{place}: container ports {sorted(declared)} but the service listens on {sorted(wanted)}")
        host = listen_host(service, settings)
        if wanted and is_loopback(host):
            problems.append(f"{place}: listens on loopback {host}, unreachable by probes and Services")
        health = health_port(service, settings)
        for probe_name, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            probe = container.get(probe_name) or {}
            if not wanted:
                continue
            http = probe.get("httpGet")
            if http is None:
                problems.append(f"{place}: {probe_name} should be an httpGet on {path}")
                continue
            if _port_number(container, http["port"]) != health or http.get("path") != path:
                problems.append(f"{place}: {probe_name} should GET {path} on port {health}")
    for svc in (o for o in objects if o["kind"] == "Service"):
        selector = svc["spec"].get("selector", {})
        pods = [(w, p) for w, p in pod_specs(objects) if selects(selector, w["spec"]["template"]["metadata"]["labels"])]
        if not pods:
            problems.append(f"Service/{svc['metadata']['name']} selects no workload")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload, pod in pods:
                if not any(_port_number(c, target) for c in pod["containers"]):
                    problems.append(
                        f"Service/{svc['metadata']['name']} targetPort {target!r} is not a port of "
                        f"{workload['kind']}/{workload['metadata']['name']}"
                    )
    for ingress in (o for o in objects if o["kind"] == "Ingress"):
        for backend in ingress_backends(ingress).values():
            backend_service = find(objects, "Service", backend["name"])
            if backend_service is None:
                problems.append(f"Ingress/{ingress['metadata']['name']}: no Service {backend['name']}")
                continue
            port = backend["port"]
            if not any(
                p["port"] == port.get("number") or p.get("name") == port.get("name")
                for p in backend_service["spec"]["ports"]
            ):
                problems.append(f"Ingress/{ingress['metadata']['name']}: Service {backend['name']} has no port {port}")
    return problems


def ingress_backends(ingress: Manifest) -> dict[str, Manifest]:
    """path → backend service of every rule of an Ingress."""
    routes = {}
    for rule in ingress["spec"].get("rules", []):
        for path in rule.get("http", {}).get("paths", []):
            routes[path["path"]] = path["backend"]["service"]
    return routes


def service_workload(objects: list[Manifest], service_name: str) -> str | None:
    """Name of the Deployment whose pods a Service selects (None if none or several)."""
    svc = find(objects, "Service", service_name)
    if svc is None:
        return None
    names = [
        w["metadata"]["name"]
        for w, _ in pod_specs(objects)
        if selects(svc["spec"].get("selector", {}), w["spec"]["template"]["metadata"]["labels"])
    ]
    return names[0] if len(names) == 1 else None


def check_ingress(objects: list[Manifest], min_timeout: int = 300) -> Problems:
    """/ws (the gateway path) reaches the gateway pods and /api the api pods, with long
    WebSocket timeouts."""
    problems = []
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    if not ingresses:
        return ["no Ingress"]
    config = find(objects, "ConfigMap", "herald-config")
    ws_path = settings_with(config.get("data", {}) if config else {}).gateway_path
    for path, deployment in ((ws_path, "gateway"), ("/api", "api")):
        backends = [ingress_backends(i).get(path) for i in ingresses]
        found = [b for b in backends if b]
        if not found:
            problems.append(f"no Ingress routes {path}")
        for backend in found:
            if service_workload(objects, backend["name"]) != deployment:
                problems.append(f"Ingress routes {path} to Service {backend['name']}, not to the {deployment} pods")
    for ingress in ingresses:
        if ws_path in ingress_backends(ingress):
            annotations = ingress["metadata"].get("annotations", {})
            for key in ("proxy-read-timeout", "proxy-send-timeout"):
                value = annotations.get(f"nginx.ingress.kubernetes.io/{key}")
                if value is None or int(value) < min_timeout:
                    problems.append(f"Ingress/{ingress['metadata']['name']}: {key} below {min_timeout}s for WebSockets")
    return problems


def check_gateway_scaling(objects: list[Manifest]) -> Problems:
    """The HPA scales the gateway Deployment on CPU; a PDB covers the gateway pods."""
    problems = []
    gateway = find(objects, "Deployment", "gateway")
    if gateway is None:
        return ["no gateway Deployment"]
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    targeting = [
        h
        for h in hpas
        if h["spec"]["scaleTargetRef"].get("kind") == "Deployment" and h["spec"]["scaleTargetRef"]["name"] == "gateway"
    ]
    if not targeting:
        problems.append("no HorizontalPodAutoscaler targets Deployment/gateway")
    for hpa in targeting:
        if hpa["apiVersion"] != "autoscaling/v2":
            problems.append(f"HPA/{hpa['metadata']['name']} is not autoscaling/v2")
        metrics = hpa["spec"].get("metrics", [])
        if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in metrics):
            problems.append(f"HPA/{hpa['metadata']['name']} does not scale on CPU")
        if hpa["spec"].get("minReplicas", 1) < 2:
            problems.append(f"HPA/{hpa['metadata']['name']} may scale the gateways down to one")
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    if not any(selects(p["spec"]["selector"].get("matchLabels", {}), labels) for p in pdbs):
        problems.append("no PodDisruptionBudget selects the gateway pods")
    return problems


def trust_problems(trusted: list[str]) -> Problems:
    """What is wrong with a HERALD_TRUSTED_PROXIES value on its own (it parses: settings did that)."""
    return [
        f"HERALD_TRUSTED_PROXIES trusts every address ({entry}): any client could name its own"
        for entry in trusted
        if ipaddress.ip_network(entry).prefixlen == 0
    ]


def check_client_addresses(objects: list[Manifest]) -> Problems:
    """Gateways behind an Ingress trust its controller's X-Forwarded-For
    (HERALD_TRUSTED_PROXIES), so their per-IP limits count clients rather than controller
    pods, and they do not trust everyone. The base leaves the value to overlays."""
    config = find(objects, "ConfigMap", "herald-config")
    ws_path = settings_with(config.get("data", {}) if config else {}).gateway_path
    behind_ingress = any(ws_path in ingress_backends(o) for o in objects if o["kind"] == "Ingress")
    problems: Problems = []
    for workload, _, container in containers(objects):
        if herald_service(container) != "gateway":
            continue
        env, _ = container_env(objects, container)
        trusted = settings_with(env).trusted_proxies
        problems.extend(f"{where(workload, container)}: {p}" for p in trust_problems(trusted))
        if behind_ingress and not trusted:
            problems.append(
                f"{where(workload, container)}: behind an Ingress with HERALD_TRUSTED_PROXIES empty, every client "
                "of one controller pod shares the per-IP limits"
            )
    return problems


def _sleep_seconds(container: Manifest) -> float:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    if len(command) == 2 and command[0] == "sleep":
        return float(command[1])
    return 0.0


def check_graceful_shutdown(objects: list[Manifest], min_pre_stop: float = 5.0) -> Problems:
    """Gateways and the api sleep in preStop (so endpoints drop them first), and the grace
    period covers that sleep plus their drain (gateway: sockets, then NATS, each up to
    HERALD_SHUTDOWN_GRACE)."""
    problems = []
    for workload, pod, container in containers(objects):
        service = herald_service(container)
        if service not in ("gateway", "api"):
            continue
        env, _ = container_env(objects, container)
        grace = settings_with(env).shutdown_grace
        sleep = _sleep_seconds(container)
        if sleep < min_pre_stop:
            problems.append(f"{where(workload, container)}: preStop sleep {sleep}s, want at least {min_pre_stop}s")
        phases = 2 if service == "gateway" else 1
        needed = sleep + phases * grace + 1
        period = pod.get("terminationGracePeriodSeconds", 30)
        if period < needed:
            problems.append(f"{where(workload, container)}: terminationGracePeriodSeconds {period} < {needed}")
    return problems


@dataclass
class NatsConfig:
    routes: list[str] = field(default_factory=list)
    sync_always: bool = False
    store_dir: str | None = None
    cluster_port: int | None = None


def parse_nats_config(text: str) -> NatsConfig:
    """The few facts checked in a nats-server configuration."""
    text = re.sub(r"#[^\n]*", "", text)
    config = NatsConfig()
    routes = re.search(r"routes\s*[:=]?\s*\[(.*?)\]", text, re.DOTALL)
    if routes:
        config.routes = [r.strip("\"',") for r in routes.group(1).split() if r.strip("\"',")]
    jetstream = re.search(r"jetstream\s*[:=]?\s*\{(.*?)\}", text, re.DOTALL)
    if jetstream:
        config.sync_always = bool(re.search(r"sync_interval\s*[:=]\s*\"?always\"?", jetstream.group(1)))
        store = re.search(r"store_dir\s*[:=]\s*\"?([^\s\"]+)", jetstream.group(1))
        config.store_dir = store.group(1) if store else None
    cluster = re.search(r"cluster\s*[:=]?\s*\{.*?listen\s*[:=]\s*\"?[^\s\"]*:(\d+)", text, re.DOTALL)
    config.cluster_port = int(cluster.group(1)) if cluster else None
    return config


def check_nats_routes(config: NatsConfig, nodes: set[str]) -> Problems:
    """The cluster routes name exactly ``nodes`` (host:port), and JetStream fsyncs always."""
    problems = []
    routed = {urlsplit(r).netloc for r in config.routes}
    if routed != nodes:
        problems.append(f"NATS routes {sorted(routed)} but the cluster nodes are {sorted(nodes)}")
    if not config.sync_always:
        problems.append("NATS JetStream lacks sync_interval: always")
    return problems


def check_nats_k8s(objects: list[Manifest]) -> Problems:
    """The NATS StatefulSet, its headless Service, its configuration and HERALD_NATS_* agree."""
    sts = find(objects, "StatefulSet", "nats")
    if sts is None:
        return ["no StatefulSet nats"]
    problems = []
    replicas = sts["spec"].get("replicas", 1)
    headless = find(objects, "Service", sts["spec"]["serviceName"])
    if headless is None or headless["spec"].get("clusterIP") != "None":
        problems.append(f"StatefulSet/nats: serviceName {sts['spec']['serviceName']} is not a headless Service")
        return problems
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    config_volume = next((v for v in pod.get("volumes", []) if "configMap" in v), None)
    config_map = find(objects, "ConfigMap", config_volume["configMap"]["name"]) if config_volume else None
    if config_map is None:
        return [*problems, "StatefulSet/nats: no ConfigMap with its configuration"]
    data = config_map["data"]
    config = parse_nats_config(data.get("nats.conf") or next(iter(data.values())))
    cluster_port = _port_number(container, "cluster")
    if config.cluster_port != cluster_port:
        problems.append(f"NATS cluster listens on {config.cluster_port}, container port is {cluster_port}")
    if not any(p.get("name") == "cluster" and p["port"] == cluster_port for p in headless["spec"]["ports"]):
        problems.append(f"Service/{headless['metadata']['name']} does not publish the cluster port")
    nodes = {f"{sts['metadata']['name']}-{i}.{headless['metadata']['name']}:{cluster_port}" for i in range(replicas)}
    problems.extend(check_nats_routes(config, nodes))
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    if not any(name in claims and config.store_dir and config.store_dir.startswith(mounts[name]) for name in mounts):
        problems.append("the JetStream store_dir is not on a volumeClaimTemplate")
    herald = find(objects, "ConfigMap", "herald-config")
    settings = settings_with(herald.get("data", {}) if herald else {})
    if settings.nats_replicas > replicas:
        problems.append(f"HERALD_NATS_REPLICAS={settings.nats_replicas} but only {replicas} NATS nodes")
    for url in settings.nats_url.split(","):
        parts = urlsplit(url.strip())
        svc = find(objects, "Service", (parts.hostname or "").split(".", 1)[0])
        if svc is None or not any(p["port"] == (parts.port or 4222) for p in svc["spec"]["ports"]):
            problems.append(f"HERALD_NATS_URL {url} is not a NATS Service port")
    return problems


# docker-compose ------------------------------------------------------------------------

INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[?-][^}]*)?\}$")


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def compose_role(name: str, service: Mapping[str, Any]) -> str | None:
    """Which Herald service a compose service runs, from its Dockerfile or image."""
    dockerfile = service.get("build", {}).get("dockerfile", "") if isinstance(service.get("build"), dict) else ""
    for role in SERVICES:
        if dockerfile.endswith(f"{role}.Dockerfile") or image_repository(service.get("image", "")).endswith(
            f"herald/{role}"
        ):
            return role
    return None


def check_compose_images(compose: Mapping[str, Any], root: Path = ROOT) -> Problems:
    problems = []
    for name, service in compose["services"].items():
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        if "image" in service:
            problem = image_problem(service["image"])
            if problem:
                problems.append(f"{name}: {problem}")
        build = service.get("build")
        if build is not None:
            context = root / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
    return problems


def check_compose_health(compose: Mapping[str, Any]) -> Problems:
    """Every service has a health check; every depends_on waits for service_healthy."""
    problems = []
    services = compose["services"]
    for name, service in services.items():
        check = service.get("healthcheck", {})
        if not check.get("test") or check.get("disable") or check.get("test") == ["NONE"]:
            problems.append(f"{name}: no healthcheck")
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on without condition: service_healthy")
            continue
        for dep, spec in depends.items():
            if dep not in services:
                problems.append(f"{name}: depends on unknown service {dep}")
            elif (spec or {}).get("condition") != "service_healthy":
                problems.append(f"{name}: depends on {dep} without condition: service_healthy")
    return problems


def check_compose_secrets(compose: Mapping[str, Any]) -> Problems:
    """Secret-looking variables are interpolated from the environment, never literals."""
    problems = []
    for name, service in compose["services"].items():
        for key, value in compose_env(service).items():
            if "://" in value:
                password = urlsplit(value).password
                if password is not None and not INTERPOLATION.match(password):
                    problems.append(f"{name}: {key} holds a literal password")
            elif SECRET_NAME.search(key) and not INTERPOLATION.match(value):
                problems.append(f"{name}: {key} is a literal, use ${{{key}:?...}} from the environment")
    return problems


def check_compose_herald(compose: Mapping[str, Any]) -> Problems:
    """HERALD_* names exist; api and gateways listen beyond loopback, their health checks
    probe their own ports, and gateways get time to drain."""
    problems = check_setting_names(
        [(name, key) for name, service in compose["services"].items() for key in compose_env(service)]
    )
    for name, service in compose["services"].items():
        role = compose_role(name, service)
        if role is None:
            continue
        settings = settings_with(compose_env(service))
        ports = expected_ports(role, settings)
        host = listen_host(role, settings)
        if ports and is_loopback(host):
            problems.append(f"{name}: listens on loopback {host}")
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        health = health_port(role, settings)
        if ports and f":{health}/" not in test:
            problems.append(f"{name}: healthcheck does not probe port {health}")
        if role == "gateway":
            needed = 2 * settings.shutdown_grace + 1
            if parse_duration(service.get("stop_grace_period", "10s")) < needed:
                problems.append(f"{name}: stop_grace_period shorter than the drain ({needed}s)")
    return problems


def parse_duration(text: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text)):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def compose_nats_nodes(compose: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if image_repository(service.get("image", "")) == "nats"
    }


def compose_nats_config_file(service: Mapping[str, Any], root: Path = ROOT) -> Path | None:
    """The host file mounted where the service's command reads its --config."""
    command = service.get("command", [])
    command = shlex.split(command) if isinstance(command, str) else command
    target = next((command[i + 1] for i, arg in enumerate(command[:-1]) if arg in ("-c", "--config")), None)
    for volume in service.get("volumes", []):
        host, _, rest = str(volume).partition(":")
        if target and rest.split(":", 1)[0] == target:
            return root / host
    return None


def check_compose_nats(compose: Mapping[str, Any], root: Path = ROOT) -> Problems:
    nodes = compose_nats_nodes(compose)
    problems = []
    if len(nodes) != 3:
        problems.append(f"{len(nodes)} NATS nodes, want 3")
    for name, service in nodes.items():
        path = compose_nats_config_file(service, root)
        if path is None or not path.is_file():
            problems.append(f"{name}: no configuration file mounted for --config")
            continue
        config = parse_nats_config(path.read_text(encoding="utf-8"))
        problems.extend(
            f"{name}: {p}" for p in check_nats_routes(config, {f"{n}:{config.cluster_port}" for n in nodes})
        )
    for name, service in compose["services"].items():
        if compose_role(name, service) is None:
            continue
        settings = settings_with(compose_env(service))
        hosts = {urlsplit(u.strip()).hostname for u in settings.nats_url.split(",")}
        if hosts != set(nodes):
            problems.append(f"{name}: HERALD_NATS_URL names {sorted(map(str, hosts))}, not every NATS node")
        if settings.nats_replicas > len(nodes):
            problems.append(f"{name}: HERALD_NATS_REPLICAS={settings.nats_replicas} > {len(nodes)} nodes")
    return problems


def compose_proxies(compose: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The reverse proxies (nginx) of the compose file."""
    return {
        name: service
        for name, service in compose["services"].items()
        if image_repository(service.get("image", "")) == "nginx"
    }


def check_compose_client_addresses(compose: Mapping[str, Any]) -> Problems:
    """The gateways trust X-Forwarded-For from the proxy's address and from no address
    another container or the host could come from: the proxy has a fixed ipv4_address in
    the default network's explicit subnet, outside the range Docker hands out, and
    HERALD_TRUSTED_PROXIES covers it but neither that range nor the network's gateway
    (where Docker's userland proxy makes connections from the host appear to come from)."""
    problems = []
    pools = compose.get("networks", {}).get("default", {}).get("ipam", {}).get("config", [])
    dynamic = [ipaddress.ip_network(p.get("ip_range", p["subnet"])) for p in pools]
    gateways = [
        ipaddress.ip_address(p["gateway"]) if "gateway" in p else next(ipaddress.ip_network(p["subnet"]).hosts())
        for p in pools
    ]
    proxy_addresses = []
    for name, service in compose_proxies(compose).items():
        networks = service.get("networks", {})
        fixed = networks.get("default", {}).get("ipv4_address") if isinstance(networks, dict) else None
        if fixed is None:
            problems.append(f"{name}: no fixed ipv4_address on the default network for the gateways to trust")
            continue
        address = ipaddress.ip_address(fixed)
        proxy_addresses.append(address)
        if not any(address in ipaddress.ip_network(p["subnet"]) for p in pools):
            problems.append(f"{name}: {address} is not in an explicit subnet of the default network")
        if any(address in r for r in dynamic):
            problems.append(f"{name}: {address} is in the range Docker hands out; another container may get it")
    for name, service in compose["services"].items():
        if compose_role(name, service) != "gateway":
            continue
        trusted = settings_with(compose_env(service)).trusted_proxies
        problems.extend(f"{name}: {p}" for p in trust_problems(trusted))
        if not trusted:
            problems.append(f"{name}: HERALD_TRUSTED_PROXIES is empty: every client shares the proxy's per-IP limits")
            continue
        networks = [ipaddress.ip_network(entry) for entry in trusted]
        for address in proxy_addresses:
            if not any(address in n for n in networks):
                problems.append(f"{name}: HERALD_TRUSTED_PROXIES does not include the proxy's address {address}")
        for network in networks:
            for pool in dynamic:
                if network.version == pool.version and network.overlaps(pool):
                    problems.append(f"{name}: HERALD_TRUSTED_PROXIES trusts {network}, which overlaps {pool}")
            for gateway in gateways:
                if gateway in network:
                    problems.append(f"{name}: HERALD_TRUSTED_PROXIES trusts the network gateway {gateway}")
    return problems


# nginx ---------------------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    children: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.children or [] if d.name == name]

    def first_args(self, name: str) -> list[str] | None:
        found = self.all(name)
        return found[0].args if found else None


def parse_nginx(text: str) -> Directive:
    """nginx configuration as a tree of directives (enough for routing checks)."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|#[^\n]*|[{};]|[^\s{};]+', text)
    root = Directive("main", [], [])
    stack = [root]
    words: list[str] = []
    for token in tokens:
        if token.startswith("#"):
            continue
        if token in ("{", ";"):
            if not words:
                raise ValueError(f"nginx: {token!r} without a directive")
            node = Directive(words[0], words[1:], [] if token == "{" else None)
            assert stack[-1].children is not None
            stack[-1].children.append(node)
            if token == "{":
                stack.append(node)
            words = []
        elif token == "}":
            if words or len(stack) == 1:
                raise ValueError("nginx: unbalanced '}'")
            stack.pop()
        else:
            words.append(token.strip("\"'") if token[0] in "\"'" else token)
    if len(stack) != 1 or words:
        raise ValueError("nginx: unterminated block")
    return root


def _locations(server: Directive) -> dict[str, Directive]:
    return {loc.args[-1]: loc for loc in server.all("location")}


def check_nginx(conf: Directive, compose: Mapping[str, Any], min_timeout: float = 300) -> Problems:
    """/ws goes with Upgrade headers and long timeouts to the gateway services; /api,
    /healthz and /schema go to the api service; upstream ports match their settings."""
    http = conf.all("http")
    if not http:
        return ["nginx: no http block"]
    upstreams = {u.args[0]: u for u in http[0].all("upstream")}
    services = compose["services"]
    roles = {name: compose_role(name, s) for name, s in services.items()}
    problems = []
    servers = http[0].all("server")
    if not servers:
        return ["nginx: no server block"]
    locations = _locations(servers[0])
    gateways = [n for n, r in roles.items() if r == "gateway"]
    gateway_path = settings_with(compose_env(services[gateways[0]])).gateway_path if gateways else "/ws"
    routes = [(gateway_path, "gateway"), ("/api", "api"), ("/healthz", "api"), ("/schema", "api")]
    for path, role in routes:
        location = locations.get(path) or locations.get(path + "/")
        if location is None:
            problems.append(f"nginx: no location for {path}")
            continue
        target = (location.first_args("proxy_pass") or [""])[0]
        upstream = upstreams.get(target.removeprefix("http://").rstrip("/"))
        if upstream is None:
            problems.append(f"nginx: {path} does not proxy to an upstream")
            continue
        members = [s.args[0] for s in upstream.all("server")]
        wanted = {n for n, r in roles.items() if r == role}
        if {m.split(":")[0] for m in members} != wanted:
            problems.append(f"nginx: {path} goes to {members}, not to the {role} services {sorted(wanted)}")
        for member in members:
            host, _, port = member.partition(":")
            if host in services:
                settings = settings_with(compose_env(services[host]))
                listen = settings.gateway_port if role == "gateway" else settings.api_port
                if int(port or 80) != listen:
                    problems.append(f"nginx: upstream {member} but {host} listens on {listen}")
        if role == "gateway":
            headers = {d.args[0].lower(): d.args[1:] for d in location.all("proxy_set_header")}
            if headers.get("upgrade") != ["$http_upgrade"]:
                problems.append(f"nginx: {path} does not pass the Upgrade header")
            connection = headers.get("connection", [""])[0]
            if connection != "upgrade" and not _maps_to_upgrade(http[0], connection):
                problems.append(f"nginx: {path} does not send Connection: upgrade")
            trusting = any(settings_with(compose_env(services[g])).trusted_proxies for g in gateways)
            forwarded = headers.get("x-forwarded-for", [""])[0]
            if trusting and forwarded not in ("$proxy_add_x_forwarded_for", "$remote_addr"):
                problems.append(f"nginx: {path} does not send X-Forwarded-For, which the gateways trust")
            if location.first_args("proxy_http_version") != ["1.1"]:
                problems.append(f"nginx: {path} needs proxy_http_version 1.1")
            for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
                value = location.first_args(timeout)
                if value is None or parse_duration(value[0]) < min_timeout:
                    problems.append(f"nginx: {path} {timeout} below {min_timeout}s")
    return problems


def _maps_to_upgrade(http: Directive, variable: str) -> bool:
    for block in http.all("map"):
        if block.args[-1] == variable and block.args[0] == "$http_upgrade":
            return any(d.name == "default" and d.args == ["upgrade"] for d in block.children or [])
    return False


# Dockerfiles ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def check_dockerfile(text: str, service: str) -> Problems:
    """Base images pinned; the final stage installs every local package, runs as a
    non-root user, stops on SIGTERM, exposes the service's ports, listens beyond loopback,
    health-checks its HTTP port and runs ``herald <service>``."""
    problems = []
    stages: list[list[tuple[str, str]]] = []
    aliases: set[str] = set()
    for keyword, rest in dockerfile_instructions(text):
        if keyword == "FROM":
            parts = rest.split()
            image = next(p for p in parts if not p.startswith("--"))
            if image not in aliases:
                problem = image_problem(image)
                if problem:
                    problems.append(problem)
            if len(parts) >= 3 and parts[-2].upper() == "AS":
                aliases.add(parts[-1])
            stages.append([])
        elif stages:
            stages[-1].append((keyword, rest))
    if not stages:
        return ["no FROM"]
    final = stages[-1]
    args = {k: [r for kw, r in final if kw == k] for k in ("USER", "STOPSIGNAL", "EXPOSE", "HEALTHCHECK", "ENV", "CMD")}
    installs = " ".join(r for stage in stages for kw, r in stage if kw == "RUN" and "pip install" in r)
    for package in LOCAL_PACKAGES:
        if f"./{package}" not in installs.split():
            problems.append(f"pip install does not name ./{package} (it would be looked up on an index)")
    user = args["USER"][-1].split(":")[0] if args["USER"] else "root"
    if user in ("root", "0"):
        problems.append("the final stage runs as root")
    if args["STOPSIGNAL"] != ["SIGTERM"]:
        problems.append("no STOPSIGNAL SIGTERM")
    env = dict(re.findall(r"(HERALD_[A-Z_]+)=(\S+)", " ".join(args["ENV"])))
    problems.extend(check_setting_names([("Dockerfile ENV", name) for name in env]))
    settings = settings_with(env)
    ports = expected_ports(service, settings)
    exposed = {int(p.split("/")[0]) for e in args["EXPOSE"] for p in e.split()}
    if exposed != ports:
        problems.append(f"EXPOSE {sorted(exposed)} but the {service} listens on {sorted(ports)}")
    host = listen_host(service, settings)
    if ports and is_loopback(host):
        problems.append(f"the {service} would listen on loopback {host} in the container")
    if ports:
        health = health_port(service, settings)
        healthcheck = " ".join(args["HEALTHCHECK"])
        if not healthcheck or "/healthz" not in healthcheck or str(health) not in healthcheck:
            problems.append(f"no HEALTHCHECK on /healthz port {health}")
    if args["CMD"] != [f'["{service}"]'] or ("ENTRYPOINT", '["herald"]') not in final:
        problems.append(f"does not run `herald {service}`")
    return problems


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore ``patterns`` (no ! exceptions) keep ``path`` out of the context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and any(
                fnmatch.fnmatchcase("/".join(parts[i : j + 1]), bare)
                for i in range(len(parts))
                for j in range(i, len(parts))
            ):
                return True
    return False


def check_dockerignore(text: str, copied: list[str], required: tuple[str, ...]) -> Problems:
    """What must stay out of the context does, and what the Dockerfiles COPY stays in."""
    patterns = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    problems = [
        f".dockerignore keeps {p} in the build context" for p in required if not dockerignore_excludes(patterns, p)
    ]
    problems.extend(
        f".dockerignore excludes {p}, which a Dockerfile copies" for p in copied if dockerignore_excludes(patterns, p)
    )
    return problems


def dockerfile_copies(text: str) -> list[str]:
    """Source paths of the COPY instructions that read from the build context."""
    sources: list[str] = []
    for keyword, rest in dockerfile_instructions(text):
        if keyword == "COPY" and "--from=" not in rest:
            sources.extend(p.removeprefix("./") for p in rest.split()[:-1] if not p.startswith("--"))
    return sources
