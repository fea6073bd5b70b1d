// A subscriber with two overlapping patterns while messages are published over REST without
// pause; pytest kills (SIGKILL), stops (SIGTERM) or freezes (SIGSTOP) the gateway in the
// middle, or nothing happens and the token expires every few seconds instead (MODE=refresh).
// Prints `ready` once messages flow, then one `result` with what each subscription got.
import { Client } from "../../dist/index.js";
import { audit, commands, env, mint, restPublish, say, sleep, until, WebSocket } from "./lib.mjs";

const mode = env("MODE");
const url = env("HERALD_TEST_WS");
const api = env("HERALD_TEST_API");
const secret = env("HERALD_TEST_SECRET");
const prefix = env("TOPIC_PREFIX");
const minMessages = Number(process.env.MESSAGES ?? "150");
const ttl = Number(process.env.TOKEN_TTL ?? "3600");

const publisher = mint(secret, { sub: "ts-publisher", roles: ["publisher"] }, 3600);
let tokens = 0;
const getToken = () => {
  tokens++;
  return mint(secret, { sub: "ts-reader", topics: [`${prefix}.**`] }, ttl);
};

const client = new Client(url, {
  getToken,
  WebSocket,
  minReconnectDelayMs: 200,
  maxReconnectDelayMs: 2000,
  connectTimeoutMs: 3000,
  pingIntervalMs: Number(process.env.PING_MS ?? "15000"),
  pongTimeoutMs: Number(process.env.PONG_MS ?? "5000"),
  refreshMarginMs: 30_000,
});
const states = [];
const disconnects = [];
let refreshes = 0;
let lastDisconnectAt = 0;
let deadNoticedAfterMs;
// Messages published between the first disconnect and the reconnect: what only a replay brings.
let sentAtDisconnect;
let sentAtReconnect;
client.on("state", ({ from, to }) => {
  states.push(to);
  if (from === "connected" && sentAtDisconnect === undefined) sentAtDisconnect = sent;
  if (to === "connected" && sentAtDisconnect !== undefined && sentAtReconnect === undefined) sentAtReconnect = sent;
});
client.on("refreshed", () => refreshes++);
client.on("disconnect", ({ code, reason }) => {
  disconnects.push({ code, reason });
  lastDisconnectAt = Date.now();
});

let sent = 0;
const wide = [];
const narrow = [];
const byTopic = { a: [], b: [] };
let gaps = 0;
const wideSub = client.subscribe(`${prefix}.*`, (m) => {
  wide.push(m.data.n);
  byTopic[m.topic.endsWith(".a") ? "a" : "b"].push(m.data.n);
});
const narrowSub = client.subscribe(`${prefix}.a`, (m) => narrow.push(m.data.n));
for (const sub of [wideSub, narrowSub]) sub.on("gap", () => gaps++);

await client.connect();
await Promise.all([wideSub.ready(), narrowSub.ready()]);

const control = commands();
let failedPublishes = 0;
let stop = false;
const published = { a: [], b: [] };
const publishing = (async () => {
  while (!stop && sent < 3000) {
    const side = sent % 3 === 0 ? "b" : "a";
    try {
      await restPublish(api, publisher, `${prefix}.${side}`, { n: sent });
      published[side].push(sent);
      sent++;
    } catch {
      failedPublishes++;
    }
    await sleep(15);
  }
})();

await until(() => wide.length >= 20, 20_000, "the first messages");
const watchingSince = Date.now();
say("ready");
let counted = 0;
if (mode === "refresh") {
  await sleep(Number(process.env.DURATION_MS ?? "9000"));
} else {
  await control.wait("go", 60_000); // the gateway was hit and is back
  if (mode === "freeze") deadNoticedAfterMs = lastDisconnectAt - watchingSince;
  await until(() => client.state === "connected", 30_000, "the reconnect");
  counted = wide.length;
  await until(() => wide.length >= counted + 20, 30_000, "messages after the reconnect");
}
await until(() => sent >= minMessages, 60_000, "enough messages");
stop = true;
await publishing;
const all = [...published.a, ...published.b].sort((x, y) => x - y);
await until(() => wide.length >= all.length && narrow.length >= published.a.length, 30_000, "every message").catch(() => {});
await sleep(300); // anything extra (a duplicate) would show up now
say("result", {
  sent,
  failedPublishes,
  wide: audit(wide, all),
  narrow: audit(narrow, published.a),
  topicA: audit(byTopic.a, published.a),
  topicB: audit(byTopic.b, published.b),
  receivedAfterReconnect: wide.length - counted,
  publishedWhileDown: sentAtReconnect === undefined ? null : sentAtReconnect - sentAtDisconnect,
  states,
  disconnects,
  tokens,
  refreshes,
  gaps,
  recovered: [wideSub.recovered, narrowSub.recovered],
  deadNoticedAfterMs,
});
control.close();
client.close();
