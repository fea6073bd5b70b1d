// Users: one user's sockets on every gateway (GET /api/users/{id}/connections) and a
// button that closes them all with 4003 (POST /api/users/{id}/disconnect).
import { ApiError, call, get } from "./api.js";
import { announce, clock, fill, h, table } from "./dom.js";

export function mount(root, userId, { expired }) {
  const input = h("input", { id: "user-id", autocomplete: "off", spellcheck: "false", required: true, value: userId });
  const results = h("div", { class: "card", id: "user-results" });
  fill(
    root,
    h("h1", {}, "Users"),
    h(
      "form",
      {
        class: "row",
        onsubmit: (e) => {
          e.preventDefault();
          location.hash = `#/users/${encodeURIComponent(input.value.trim())}`;
        },
      },
      h("label", { for: "user-id" }, "User id (sub)"),
      input,
      h("button", { type: "submit" }, "Show connections"),
    ),
    results,
  );
  if (!userId) {
    fill(results, h("p", {}, "Enter a user id to see their sockets on every gateway."));
    return () => {};
  }
  let stopped = false;

  async function disconnect(button) {
    button.disabled = true;
    try {
      const { body } = await call(`/api/users/${encodeURIComponent(userId)}/disconnect`, { method: "POST" });
      const text = `Closed ${body.closed} socket(s) of ${userId} with 4003 on ${body.gateways} gateway(s).`;
      announce(text);
      await load(text);
    } catch (error) {
      fill(results, h("p", { class: "error", role: "alert" }, `Disconnect failed: ${error.message}`));
    }
  }

  async function load(done = "") {
    try {
      const found = await get(`/api/users/${encodeURIComponent(userId)}/connections`);
      if (stopped) return;
      const rows = found.connections.map((c) => [
        h("code", {}, c.id),
        h("code", {}, c.gateway),
        c.clientIp,
        clock(c.connectedAt),
        c.subscriptions.length ? c.subscriptions.join(", ") : "—",
      ]);
      const button = h("button", { type: "button", id: "disconnect", class: "danger", disabled: !rows.length }, `Disconnect ${userId} everywhere`);
      button.addEventListener("click", () => disconnect(button));
      fill(
        results,
        done ? h("p", { id: "disconnect-result", class: "ok", role: "status" }, done) : null,
        table(`Sockets of ${userId} (${rows.length})`, ["Socket", "Gateway", "Client IP", "Connected", "Subscriptions"], rows, { id: "connections" }),
        found.missingGateways.length ? h("p", { class: "error" }, `No answer from gateway(s) ${found.missingGateways.join(", ")}.`) : null,
        h("p", { class: "row" }, button, h("button", { type: "button", class: "quiet", onclick: () => load() }, "Refresh")),
        h("p", { class: "small" }, "Disconnected clients are told not to reconnect by themselves (4003); a valid token still lets them back in."),
      );
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 401) return expired();
      fill(results, h("p", { class: "error", role: "alert" }, `Cannot read the connections: ${error.message}`));
    }
  }
  load();
  return () => {
    stopped = true;
  };
}
