// One topic: the live tail and presence through the TypeScript SDK (herald.min.js, the
// global Herald), a publish form (POST /api/publish) and the stored history (REST, paged).
import { call, get, meta, session, traceId, traceLink } from "./api.js";
import { announce, clock, fill, h } from "./dom.js";

const TAIL_MAX = 200;
const HISTORY_PAGE = 20;

function preview(data) {
  const text = JSON.stringify(data);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function messageItem(m) {
  return h(
    "li",
    { class: "message" },
    h("span", { class: "meta" }, `#${m.offset}`, m.event ? ` ${m.event}` : "", m.publisher ? ` by ${m.publisher}` : ""),
    h("code", { class: "data" }, preview(m.data)),
  );
}

function tailSection(topic, client) {
  const state = h("span", { id: "tail-state", class: "pill" }, "connecting");
  const list = h("ol", { id: "tail", class: "messages", "aria-live": "polite", "aria-relevant": "additions" });
  client.on("state", ({ to }) => {
    state.textContent = to;
    state.dataset.state = to;
  });
  client.on("disconnect", ({ code, reason }) => {
    if (code === 4001) state.textContent = "token refused by the gateway";
    else if (code) state.title = `closed ${code} ${reason}`;
  });
  const sub = client.subscribe(
    topic,
    (m) => {
      list.prepend(messageItem(m));
      while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
    },
    { presence: true },
  );
  sub.on("state", ({ to }) => (list.dataset.subscription = to));
  sub.on("error", (e) => (state.textContent = `refused: ${e.message}`));
  return { sub, node: h("section", { class: "card", "aria-labelledby": "tail-title" }, h("h2", { id: "tail-title" }, "Live tail ", state), list) };
}

function presenceSection(topic, sub) {
  const users = new Map();
  const list = h("ul", { id: "presence", class: "plain" });
  const count = h("span", { id: "presence-count", class: "pill" }, "…");
  const log = h("ol", { id: "presence-log", class: "plain small" });
  function draw() {
    count.textContent = String(users.size);
    fill(list, [...users.keys()].sort().map((u) => h("li", { dataset: { user: u } }, h("a", { href: `#/users/${encodeURIComponent(u)}` }, u))));
  }
  sub.on("join", ({ userId }) => {
    users.set(userId, true);
    log.prepend(h("li", {}, `${clock(Date.now() / 1000)} joined: ${userId}`));
    announce(`${userId} joined`);
    draw();
  });
  sub.on("leave", ({ userId }) => {
    users.delete(userId);
    log.prepend(h("li", {}, `${clock(Date.now() / 1000)} left: ${userId}`));
    announce(`${userId} left`);
    draw();
  });
  get(`/api/topics/${encodeURIComponent(topic)}/presence`)
    .then((p) => {
      for (const u of p.users ?? []) users.set(u.userId, true);
      draw();
    })
    .catch((e) => (count.textContent = `unknown (${e.message})`));
  return h("section", { class: "card", "aria-labelledby": "presence-title" }, h("h2", { id: "presence-title" }, "Presence ", count), list, h("h3", {}, "Joins and leaves"), log);
}

function publishSection(topic) {
  const data = h("textarea", { id: "publish-data", rows: 4, spellcheck: "false", "aria-describedby": "publish-check" }, '{"text": "hello"}');
  const check = h("p", { id: "publish-check", class: "small" }, "Valid JSON.");
  const result = h("p", { id: "publish-result", role: "status" });
  const send = h("button", { type: "submit", id: "publish-send" }, "Publish");
  function validate() {
    try {
      JSON.parse(data.value);
      check.textContent = "Valid JSON.";
      check.className = "small ok";
      data.removeAttribute("aria-invalid");
      send.disabled = false;
      return true;
    } catch (error) {
      check.textContent = `Not JSON: ${error.message}`;
      check.className = "small bad";
      data.setAttribute("aria-invalid", "true");
      send.disabled = true;
      return false;
    }
  }
  data.addEventListener("input", validate);
  async function submit(event) {
    event.preventDefault();
    if (!validate()) return;
    send.disabled = true;
    try {
      const { body, headers } = await call("/api/publish", { method: "POST", body: { topic, data: JSON.parse(data.value) } });
      const link = traceLink(traceId(headers));
      fill(result, `Accepted as event ${body.eventId}. `, link ? h("a", { href: link, target: "_blank", rel: "noopener" }, "See its trace") : null);
      result.className = "ok";
    } catch (error) {
      fill(result, `Refused: ${error.message}`);
      result.className = "bad";
    } finally {
      send.disabled = false;
    }
  }
  return h(
    "section",
    { class: "card", "aria-labelledby": "publish-title" },
    h("h2", { id: "publish-title" }, "Publish"),
    h("form", { id: "publish-form", onsubmit: submit }, h("label", { for: "publish-data" }, `Data (JSON) to publish on ${topic}`), data, check, send),
    result,
  );
}

function historySection(topic) {
  const list = h("ol", { id: "history", class: "messages" });
  const more = h("button", { type: "button", id: "history-next" }, "Next page");
  const note = h("p", { class: "small" });
  let since = 0;
  async function load() {
    more.disabled = true;
    try {
      const page = await get(`/api/topics/${encodeURIComponent(topic)}/history?since=${since}&limit=${HISTORY_PAGE}`);
      fill(list, page.items.map(messageItem));
      note.textContent = page.items.length ? `Offsets after ${since}, oldest first (epoch ${page.epoch}).` : "Nothing stored after this point.";
      if (page.nextSince !== null) since = page.nextSince;
      more.hidden = page.nextSince === null;
    } catch (error) {
      note.textContent = `Cannot read the history: ${error.message}`;
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", load);
  const reload = h("button", { type: "button", id: "history-reload", class: "quiet", onclick: () => ((since = 0), load()) }, "From the start");
  load();
  return h("section", { class: "card", "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "Stored history"), note, list, h("p", { class: "row" }, reload, more));
}

/** The gateway's URL; a bare path (behind a proxy) is on the page's own origin. */
function gatewayUrl() {
  const url = new URL(meta("herald-gateway"), location.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  return url.href;
}

export function mount(root, topic, { expired }) {
  if (!topic) {
    location.hash = "#/topics";
    return () => {};
  }
  const client = new Herald.Client(gatewayUrl(), { getToken: async () => session.token });
  const tail = tailSection(topic, client);
  fill(
    root,
    h("h1", {}, h("span", { class: "muted" }, "Topic "), topic),
    h("div", { class: "grid" }, tail.node, presenceSection(topic, tail.sub), publishSection(topic), historySection(topic)),
  );
  client.connect().catch((error) => {
    if (error instanceof Herald.AuthError) expired();
  });
  return () => client.close();
}
