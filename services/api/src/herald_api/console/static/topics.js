// Topics: every topic and pattern held by some socket (GET /api/topics), searchable and paged.
import { ApiError, get } from "./api.js";
import { fill, h, table } from "./dom.js";

const PAGE = 25;

export function mount(root, _param, { expired }) {
  const search = h("input", { id: "topic-search", type: "search", autocomplete: "off", spellcheck: "false" });
  const results = h("div", { class: "card", id: "topic-results" });
  const open = h("input", { id: "topic-open", autocomplete: "off", spellcheck: "false", required: true });
  fill(
    root,
    h("h1", {}, "Topics"),
    h(
      "form",
      { class: "row", role: "search", onsubmit: (e) => (e.preventDefault(), load("")) },
      h("label", { for: "topic-search" }, "Search"),
      search,
      h("button", { type: "submit" }, "Search"),
    ),
    h(
      "form",
      {
        class: "row",
        onsubmit: (e) => {
          e.preventDefault();
          location.hash = `#/topic/${encodeURIComponent(open.value.trim())}`;
        },
      },
      h("label", { for: "topic-open" }, "Open a topic"),
      open,
      h("button", { type: "submit" }, "Open"),
    ),
    results,
  );

  let stopped = false;
  let debounce = 0;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => load(""), 300);
  });

  async function load(after) {
    const query = new URLSearchParams({ search: search.value.trim(), limit: String(PAGE) });
    if (after) query.set("after", after);
    try {
      const page = await get(`/api/topics?${query}`);
      if (stopped) return;
      const rows = page.items.map((t) => [
        t.pattern ? h("code", {}, t.topic) : h("a", { href: `#/topic/${encodeURIComponent(t.topic)}` }, t.topic),
        t.pattern ? "pattern" : "topic",
        String(t.subscribers),
        String(t.gateways),
        t.lastOffset === null ? "—" : String(t.lastOffset),
      ]);
      fill(
        results,
        table(`${page.total} held by sockets${after ? `, after ${after}` : ""}`, ["Name", "Kind", "Sockets", "Gateways", "Last offset"], rows, {
          id: "topics",
        }),
        page.missingGateways.length ? h("p", { class: "error" }, `No answer from gateway(s) ${page.missingGateways.join(", ")}.`) : null,
        page.truncated ? h("p", {}, "Some gateway holds more matches than it lists: narrow the search.") : null,
        h(
          "p",
          { class: "row" },
          after ? h("button", { type: "button", onclick: () => load("") }, "First page") : null,
          page.nextAfter ? h("button", { type: "button", id: "topics-next", onclick: () => load(page.nextAfter) }, "Next page") : null,
        ),
      );
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 401) return expired();
      fill(results, h("p", { class: "error", role: "alert" }, `Cannot list the topics: ${error.message}`));
    }
  }
  load("");
  return () => {
    stopped = true;
    clearTimeout(debounce);
  };
}
