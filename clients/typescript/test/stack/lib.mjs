// Shared by the scripts that pytest (tests/clients) runs against a real Herald stack.
// Settings come from the environment; each script prints JSON lines: `{"event": ...}`.
import { createHmac } from "node:crypto";
import { createInterface } from "node:readline";

import WebSocket from "ws";

export { WebSocket };

export const env = (name) => {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`${name} is not set`);
  return value;
};

/** One JSON line on stdout, for pytest to read. */
export function say(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

/** An HS256 token signed with the stack's secret, as `herald token` makes them. */
export function mint(secret, claims, ttlSeconds) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iat: now, exp: now + ttlSeconds, ...claims })}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

/** `POST /api/publish` with a publisher token. */
export async function restPublish(api, token, topic, data) {
  const res = await fetch(`${api}/api/publish`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ topic, data }),
  });
  if (res.status !== 202) throw new Error(`publish to ${topic}: HTTP ${res.status} ${await res.text()}`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `check()` is true; rejects after `ms` with `what`. */
export async function until(check, ms, what) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Lines pytest writes to this script's stdin (e.g. "go" once it has done its part). */
export function commands() {
  const lines = [];
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => lines.push(line.trim()));
  return {
    wait: (word, ms) => until(() => lines.includes(word), ms, `"${word}" from the test`),
    close: () => rl.close(),
  };
}

/** Per topic: were the numbers handed over exactly `expected`, in order? */
export function audit(received, expected) {
  const seen = new Set();
  let duplicates = 0;
  let reordered = 0;
  let last = -1;
  for (const n of received) {
    if (seen.has(n)) duplicates++;
    seen.add(n);
    if (n < last) reordered++;
    last = Math.max(last, n);
  }
  const lost = expected.filter((n) => !seen.has(n)).length;
  return { count: received.length, expected: expected.length, lost, duplicates, reordered };
}
