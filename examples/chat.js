// A small chat page on Herald's browser SDK (dist/herald.min.js, the global `Herald`):
// connect with a pasted token, subscribe to a topic, show its messages, publish to it.
// Query parameters url, token and topic fill the form; connect=1 connects at once.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  for (const name of ["url", "token", "topic"]) if (params.has(name)) $(name).value = params.get(name);

  let client = null;
  let topic = null;

  function show(text, className, meta) {
    const li = document.createElement("li");
    if (className) li.className = className;
    if (meta) {
      const span = document.createElement("span");
      span.className = "meta";
      span.textContent = meta;
      li.appendChild(span);
    }
    li.appendChild(document.createTextNode(text));
    $("messages").appendChild(li);
    li.scrollIntoView({ block: "nearest" });
  }

  function setStatus(state, detail) {
    $("status").dataset.state = state;
    $("status").textContent = detail ? `${state}: ${detail}` : state;
  }

  function textOf(data) {
    return data && typeof data.text === "string" ? data.text : JSON.stringify(data);
  }

  function connect(event) {
    event.preventDefault();
    if (client) client.close();
    topic = $("topic").value.trim();
    client = new Herald.Client($("url").value.trim(), { token: $("token").value.trim() });
    client.on("state", ({ to }) => {
      setStatus(to, to === "closed" && client.closeError ? client.closeError.message : "");
      $("text").disabled = $("send").disabled = to !== "connected";
    });
    const sub = client.subscribe(topic, (m) => {
      const who = m.publisher || m.event || "api";
      show(textOf(m.data), "message", `${who} #${m.offset}`);
    });
    sub.on("state", ({ to }) => ($("messages").dataset.subscription = to));
    sub.on("gap", () => show("some messages could not be replayed: reload the history", "notice"));
    sub.on("error", (e) => show(`subscription ended: ${e.message}`, "notice"));
    client.connect().catch((e) => setStatus("closed", e.message));
  }

  async function send(event) {
    event.preventDefault();
    const text = $("text").value;
    if (!client || !text) return;
    $("text").value = "";
    try {
      const offset = await client.publish(topic, { text });
      $("sent").textContent = `stored at offset ${offset}`;
    } catch (e) {
      $("sent").textContent = `not sent (${e.code}): ${e.message}`;
    }
  }

  $("connect").addEventListener("submit", connect);
  $("compose").addEventListener("submit", send);
  if (params.get("connect") === "1") $("connect").requestSubmit();
})();
