// Building DOM nodes without innerHTML: every text from the api or the gateway goes through
// textContent, so a topic name or a message can never become markup.

/** h("a", {href: "#/x", class: "c"}, "text", child) → an element. `on*` attributes take functions. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table with a caption, column headers and rows of cells (strings or nodes); "None." when empty. */
export function table(caption, headers, rows, attrs = {}) {
  const body = rows.length
    ? rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))
    : [h("tr", { class: "empty" }, h("td", { colspan: headers.length, class: "muted" }, "None."))];
  return h(
    "table",
    attrs,
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, body),
  );
}

export function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

/** Tell screen readers what just happened (the polite live region). */
export function announce(text) {
  document.getElementById("status").textContent = text;
}
