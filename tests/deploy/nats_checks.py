"""Checks of NATS security in the deployment files: TLS, the shared users and permissions
(``deploy/k8s/base/nats-auth.conf``), each service's own user, and the NetworkPolicy.

Like :mod:`tests.deploy.checks`, every ``check_*`` returns a list of problems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.checks import (
    AUTH_FILE,
    INTERPOLATION,
    NATS_SERVICES,
    ROOT,
    SERVICES,
    Manifest,
    Problems,
    RenderError,
    _port_number,
    compose_env,
    compose_nats_config_file,
    compose_nats_nodes,
    compose_role,
    container_env,
    containers,
    find,
    herald_service,
    pod_specs,
    where,
)

#: The file name nats-server configurations include the users from (next to themselves).
AUTH_INCLUDE = AUTH_FILE.name


def password_variable(service: str) -> str:
    """The variable nats-server reads ``service``'s password from (nats-auth.conf)."""
    return f"NATS_{service.upper()}_PASSWORD"


def _strip_comments(text: str) -> str:
    return re.sub(r"#[^\n]*", "", text)


def _block(text: str, name: str) -> tuple[str, str] | None:
    """(inside, rest) of the first top-level ``name { ... }`` block of a NATS config."""
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0 and re.match(rf"\b{name}\s*[:=]?\s*{{", text[i:]) and (i == 0 or not text[i - 1].isalnum()):
            start = text.index("{", i)
            level = 0
            for j in range(start, len(text)):
                level += {"{": 1, "}": -1}.get(text[j], 0)
                if level == 0:
                    return text[start + 1 : j], text[:i] + text[j + 1 :]
            return None
        i += 1
    return None


def auth_users(text: str) -> dict[str, str]:
    """user → the variable its password comes from, in a nats-auth.conf text."""
    text = _strip_comments(text)
    return dict(re.findall(r"user\s*[:=]\s*\"?(\w+)\"?\s+password\s*[:=]\s*\$(\w+)", text))


def check_auth_file(text: str) -> Problems:
    """One user per Herald service, each with its password variable and explicit allow lists."""
    problems = []
    users = auth_users(text)
    if set(users) != set(NATS_SERVICES):
        problems.append(f"NATS users {sorted(users)}, want one per service {list(NATS_SERVICES)}")
    for user, variable in users.items():
        if variable != password_variable(user):
            problems.append(f"NATS user {user} reads its password from ${variable}, not ${password_variable(user)}")
    body = _strip_comments(text)
    if re.search(r"\">\"|'>'|\[\s*>\s*\]", body):
        problems.append("a NATS permission allows every subject ('>')")
    if "deny" in body:
        problems.append("NATS permissions use deny lists; allow only what each service uses")
    if len(re.findall(r"publish\s*[:=]?\s*\{", body)) != len(users) or len(
        re.findall(r"subscribe\s*[:=]?\s*\{", body)
    ) != len(users):
        problems.append("every NATS user needs its own publish and subscribe allow lists")
    return problems


@dataclass
class NatsSecurity:
    client_tls: bool = False
    route_tls_verified: bool = False
    includes_auth: bool = False
    anonymous_user: bool = False
    cert_files: list[str] = field(default_factory=list)


def parse_nats_security(text: str) -> NatsSecurity:
    """Whether a nats-server configuration requires TLS and users, from its text."""
    text = _strip_comments(text)
    found = NatsSecurity()
    cluster = _block(text, "cluster")
    top = cluster[1] if cluster else text
    client_tls = _block(top, "tls")
    if client_tls is not None:
        found.client_tls = all(re.search(rf"\b{k}\s*[:=]", client_tls[0]) for k in ("cert_file", "key_file"))
    if cluster is not None:
        route_tls = _block(cluster[0], "tls")
        found.route_tls_verified = route_tls is not None and bool(re.search(r"verify\s*[:=]\s*true", route_tls[0]))
    auth = _block(top, "authorization")
    found.includes_auth = auth is not None and bool(
        re.fullmatch(rf"\s*include\s+[\"']?{re.escape(AUTH_INCLUDE)}[\"']?\s*", auth[0])
    )
    found.anonymous_user = bool(re.search(r"\bno_auth_user\b", text))
    found.cert_files = re.findall(r"(?:cert_file|key_file|ca_file)\s*[:=]\s*\"?([^\s\"]+)", text)
    return found


def check_nats_security(text: str) -> Problems:
    found = parse_nats_security(text)
    problems = []
    if not found.client_tls:
        problems.append("NATS clients are not required to use TLS (no top-level tls block with cert and key)")
    if not found.route_tls_verified:
        problems.append("NATS cluster routes lack mutual TLS (cluster.tls with verify: true)")
    if not found.includes_auth:
        problems.append(f"NATS authorization is not exactly `include {AUTH_INCLUDE}`")
    if found.anonymous_user:
        problems.append("NATS lets clients in without credentials (no_auth_user)")
    return problems


def _interpolated_from(value: str) -> str | None:
    """The variable a compose ``${VAR...}`` value comes from, or None for a literal."""
    match = re.match(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)", value)
    return match.group(1) if match and INTERPOLATION.match(value) else None


def _compose_mounts(service: Mapping[str, Any], root: Path) -> dict[str, Path]:
    """container path → host path of a compose service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, _, rest = str(volume).partition(":")
        if host.startswith((".", "/")):
            mounts[rest.split(":", 1)[0]] = (root / host).resolve()
    return mounts


def _mounted(path: str, mounts: Mapping[str, Path]) -> Path | None:
    """The host path behind a container ``path`` (a file mount or inside a folder mount)."""
    for target, host in mounts.items():
        if path == target:
            return host
        if path.startswith(target.rstrip("/") + "/"):
            return host / path[len(target.rstrip("/")) + 1 :]
    return None


def check_compose_nats_security(compose: Mapping[str, Any], root: Path = ROOT) -> Problems:
    """NATS nodes take TLS and the shared users; each Herald service uses its own user."""
    problems: Problems = []
    for name, service in compose_nats_nodes(compose).items():
        path = compose_nats_config_file(service, root)
        if path is None or not path.is_file():
            continue  # check_compose_nats reports it
        problems.extend(f"{name}: {p}" for p in check_nats_security(path.read_text(encoding="utf-8")))
        mounts = _compose_mounts(service, root)
        config_dir = next((t.rsplit("/", 1)[0] for t, h in mounts.items() if h == path.resolve()), "")
        if mounts.get(f"{config_dir}/{AUTH_INCLUDE}") != AUTH_FILE.resolve():
            problems.append(f"{name}: {AUTH_FILE.relative_to(ROOT)} is not mounted next to its configuration")
        env = compose_env(service)
        for svc in NATS_SERVICES:
            variable = password_variable(svc)
            if _interpolated_from(env.get(variable, "")) != variable:
                problems.append(f"{name}: {variable} must come from the environment (${{{variable}:?...}})")
        for file in parse_nats_security(path.read_text(encoding="utf-8")).cert_files:
            if _mounted(file, mounts) is None:
                problems.append(f"{name}: {file} is not mounted")
    for name, service in compose["services"].items():
        role = compose_role(name, service)
        if role is None:
            continue
        env = compose_env(service)
        if env.get("HERALD_NATS_USER") != role:
            problems.append(f"{name}: HERALD_NATS_USER is {env.get('HERALD_NATS_USER')!r}, not its own user {role!r}")
        if _interpolated_from(env.get("HERALD_NATS_PASSWORD", "")) != password_variable(role):
            problems.append(f"{name}: HERALD_NATS_PASSWORD must be ${{{password_variable(role)}:?...}}")
        ca = env.get("HERALD_NATS_TLS_CA", "")
        if not ca:
            problems.append(f"{name}: HERALD_NATS_TLS_CA is not set (NATS takes TLS only)")
        elif _mounted(ca, _compose_mounts(service, root)) is None:
            problems.append(f"{name}: HERALD_NATS_TLS_CA {ca} is not mounted")
    return problems


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against ``labels``."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, operator, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(operator)
        if ok is None:
            raise RenderError(f"selector operator {operator!r} not supported")
        if not ok:
            return False
    return True


def _pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def _policy_sources(objects: list[Manifest], rule: Manifest) -> tuple[set[str], Problems]:
    """The workloads a NetworkPolicy ingress rule lets in, and peers that let in more."""
    peers = rule.get("from")
    if not peers:
        return {"*"}, ["an ingress rule without `from` admits every pod and address"]
    names: set[str] = set()
    problems = []
    for peer in peers:
        if "ipBlock" in peer or "namespaceSelector" in peer:
            problems.append(f"ingress peer {peer} admits more than this namespace's Herald pods")
            continue
        selector = peer.get("podSelector", {})
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            problems.append("an empty podSelector admits every pod of the namespace")
            continue
        names |= {w["metadata"]["name"] for w, _ in pod_specs(objects) if selector_matches(selector, _pod_labels(w))}
    return names, problems


def _rule_ports(rule: Manifest, container: Manifest) -> set[int]:
    ports = rule.get("ports")
    if not ports:
        return {int(p["containerPort"]) for p in container.get("ports", [])}
    found = set()
    for port in ports:
        number = _port_number(container, port["port"]) if "port" in port else None
        if number is not None:
            found.add(number)
    return found


def check_k8s_nats_security(objects: list[Manifest]) -> Problems:
    """TLS and the shared users in nats-config, passwords from Secrets, each Herald pod its
    own user and the CA, and a NetworkPolicy that admits only Herald's pods to NATS."""
    sts = find(objects, "StatefulSet", "nats")
    config_map = find(objects, "ConfigMap", "nats-config")
    if sts is None or config_map is None:
        return ["no StatefulSet nats with ConfigMap nats-config"]
    problems = []
    data = config_map.get("data", {})
    if data.get(AUTH_INCLUDE) != AUTH_FILE.read_text(encoding="utf-8"):
        problems.append(f"ConfigMap/nats-config: {AUTH_INCLUDE} is not {AUTH_FILE.relative_to(ROOT)}")
    problems.extend(f"ConfigMap/nats-config: {p}" for p in check_nats_security(data.get("nats.conf", "")))
    pod = sts["spec"]["template"]["spec"]
    nats = pod["containers"][0]
    secret_volumes = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
    secret_dirs = [m["mountPath"] for m in nats.get("volumeMounts", []) if m["name"] in secret_volumes]
    for file in parse_nats_security(data.get("nats.conf", "")).cert_files:
        if not any(file.startswith(d.rstrip("/") + "/") for d in secret_dirs):
            problems.append(f"StatefulSet/nats: {file} is not on a Secret volume")
    refs: dict[str, tuple[str, str]] = {}
    nats_env = {e["name"]: e for e in nats.get("env", [])}
    for svc in NATS_SERVICES:
        ref = nats_env.get(password_variable(svc), {}).get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            problems.append(f"StatefulSet/nats: {password_variable(svc)} must come from a secretKeyRef")
        else:
            refs[svc] = (ref["name"], ref["key"])
    for workload, herald_pod, container in containers(objects):
        service = herald_service(container)
        if service is None:
            continue
        place = where(workload, container)
        env, _ = container_env(objects, container)
        if env.get("HERALD_NATS_USER") != service:
            problems.append(f"{place}: HERALD_NATS_USER is {env.get('HERALD_NATS_USER')!r}, not {service!r}")
        password: Manifest = next((e for e in container.get("env", []) if e["name"] == "HERALD_NATS_PASSWORD"), {})
        ref = password.get("valueFrom", {}).get("secretKeyRef")
        if ref is None or (ref["name"], ref["key"]) != refs.get(service):
            problems.append(f"{place}: HERALD_NATS_PASSWORD is not the Secret key nats-server knows as its password")
        ca = env.get("HERALD_NATS_TLS_CA", "")
        volumes = {v["name"] for v in herald_pod.get("volumes", []) if "secret" in v or "configMap" in v}
        mounts = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in volumes]
        if not ca:
            problems.append(f"{place}: HERALD_NATS_TLS_CA is not set (NATS takes TLS only)")
        elif not any(ca == m or ca.startswith(m.rstrip("/") + "/") for m in mounts):
            problems.append(f"{place}: HERALD_NATS_TLS_CA {ca} is not on a mounted volume")
    nats_labels = _pod_labels(sts)
    policies = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy" and selector_matches(o["spec"].get("podSelector", {}), nats_labels)
    ]
    if not any("Ingress" in p["spec"].get("policyTypes", []) for p in policies):
        return [*problems, "no NetworkPolicy restricts who reaches the NATS pods"]
    client, cluster = _port_number(nats, "client"), _port_number(nats, "cluster")
    reach: dict[int, set[str]] = {}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            names, peer_problems = _policy_sources(objects, rule)
            problems.extend(f"NetworkPolicy/{policy['metadata']['name']}: {p}" for p in peer_problems)
            for port in _rule_ports(rule, nats):
                reach.setdefault(port, set()).update(names)
    if client is not None and reach.get(client, set()) != set(SERVICES):
        problems.append(
            f"NATS client port {client} is reachable from {sorted(reach.get(client, set()))}, want {sorted(SERVICES)}"
        )
    if cluster is not None and reach.get(cluster, set()) != {sts["metadata"]["name"]}:
        problems.append(
            f"NATS cluster port {cluster} is reachable from {sorted(reach.get(cluster, set()))}, want only nats"
        )
    for port, names in reach.items():
        if port not in (client, cluster) and names:
            problems.append(f"NATS port {port} is reachable from {sorted(names)}")
    return problems


def example_passwords() -> dict[str, str]:
    """Throwaway values for the password variables nats-server needs to read its config."""
    return {password_variable(s): f"example-{s}-password" for s in NATS_SERVICES}


def lay_out_nats_config(files: Mapping[str, str], folder: Path, tls_dirs: Mapping[str, str]) -> Path:
    """The NATS configuration ``files`` (name → text) written to ``folder`` as a container
    sees them, for ``nats-server -t``: each container folder of ``tls_dirs`` becomes that
    subfolder, holding throwaway certificates under the names the configuration uses."""
    from tests.deploy.certs import Authority

    text = files["nats.conf"]
    for container_dir, sub in tls_dirs.items():
        text = text.replace(container_dir, f"{folder / sub}/")
    for name, content in files.items():
        (folder / name).write_text(text if name == "nats.conf" else content, encoding="utf-8")
    authority = Authority(folder / "throwaway-ca")
    leaf = authority.issue("nats", ("nats", "localhost"))
    body = _strip_comments(text)
    for key, source in (("ca_file", authority.ca), ("cert_file", leaf.cert), ("key_file", leaf.key)):
        for path in set(re.findall(rf"{key}\s*[:=]\s*\"?([^\s\"]+)", body)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(source.read_bytes())
    return folder / "nats.conf"
