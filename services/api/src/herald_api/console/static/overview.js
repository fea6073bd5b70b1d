// Overview: every live process (GET /api/nodes, every 2 s), the totals, and the readiness
// of the api that answers (NATS, storage).
import { ApiError, get } from "./api.js";
import { duration, fill, h, table } from "./dom.js";

const EVERY_MS = 2000;

function health(ok, yes, no) {
  return h("span", { class: ok ? "ok" : "bad" }, ok ? yes : no);
}

function figure(label, value, id) {
  return h("div", { class: "figure" }, h("span", { class: "value", id }, value), h("span", { class: "label" }, label));
}

function role(node) {
  if (node.service === "bridge") return node.role ?? "";
  if (node.service === "api") return node.storage === false ? "storage down" : "";
  return "";
}

function nodeRow(node, self) {
  const g = node.gateway;
  return [
    h("code", {}, node.id),
    h("span", { class: `service ${node.service}` }, node.service),
    [role(node), node.id === self ? " (this api)" : ""].join(""),
    `${node.host} · pid ${node.pid}`,
    node.version,
    duration(node.uptime),
    h(
      "span",
      { class: "ok" },
      `${node.nats} to ${node.natsServer}`,
      node.natsReconnects ? ` (${node.natsReconnects} reconnect${node.natsReconnects === 1 ? "" : "s"})` : "",
    ),
    g ? String(g.connections) : "",
    g ? String(g.subscriptions) : "",
    g ? (g.deliveriesPerSecond === null ? "…" : g.deliveriesPerSecond.toFixed(1)) : "",
  ];
}

export function mount(root, _param, { expired }) {
  const numbers = h("div", { class: "figures", "aria-live": "off" });
  const status = h("div", { class: "card" });
  const nodes = h("div", { class: "card" });
  fill(root, h("h1", {}, "Overview"), numbers, status, nodes);

  let timer = 0;
  let stopped = false;
  async function refresh() {
    try {
      const [list, ready] = await Promise.all([get("/api/nodes"), fetch("/readyz").then((r) => r.json())]);
      if (stopped) return;
      const gateways = list.nodes.filter((n) => n.service === "gateway");
      const count = (s) => list.nodes.filter((n) => n.service === s).length;
      const sum = (f) => gateways.reduce((total, n) => total + (f(n.gateway) ?? 0), 0);
      fill(
        numbers,
        figure("gateways", count("gateway"), "n-gateways"),
        figure("api processes", count("api"), "n-apis"),
        figure("bridges", count("bridge"), "n-bridges"),
        figure("connections", sum((g) => g.connections), "n-connections"),
        figure("subscriptions", sum((g) => g.subscriptions), "n-subscriptions"),
        figure("deliveries/s", sum((g) => g.deliveriesPerSecond).toFixed(1), "n-rate"),
      );
      fill(
        status,
        h("h2", {}, "Health"),
        h(
          "ul",
          { class: "plain" },
          h("li", {}, "NATS: ", health(ready.nats, "connected", "unreachable")),
          h("li", {}, "Storage: ", health(ready.database, "answering", "not answering")),
          h("li", {}, "Active bridge: ", health(list.nodes.some((n) => n.role === "active"), "yes", "none")),
        ),
      );
      fill(
        nodes,
        table(
          `Live processes (${list.nodes.length}), updated every ${EVERY_MS / 1000} s`,
          ["Id", "Service", "Role", "Where", "Version", "Uptime", "NATS", "Connections", "Subscriptions", "Deliveries/s"],
          list.nodes.map((n) => nodeRow(n, list.this)),
          { id: "nodes" },
        ),
      );
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 401) return expired();
      fill(status, h("p", { class: "error", role: "alert" }, `Cannot read the nodes: ${error.message}`));
    }
    if (!stopped) timer = setTimeout(refresh, EVERY_MS);
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
