// Presence against the real gateway, when it supports it: prints `unsupported` if it does not
// know the presence frame; else joins, a presence query and a leave between two users.
import { Client } from "../../dist/index.js";
import { env, mint, say, sleep, until, WebSocket } from "./lib.mjs";

const url = env("HERALD_TEST_WS");
const secret = env("HERALD_TEST_SECRET");
const topic = `${env("TOPIC_PREFIX")}.room`;
const grant = { topics: [`${env("TOPIC_PREFIX")}.**`] };
const alice = new Client(url, { token: mint(secret, { sub: "alice", ...grant }, 600), WebSocket, requestTimeoutMs: 3000 });
const bob = new Client(url, { token: mint(secret, { sub: "bob", ...grant }, 600), WebSocket, requestTimeoutMs: 3000 });
await Promise.all([alice.connect(), bob.connect()]);
try {
  await alice.presence(topic);
} catch (error) {
  if (error.code === "bad_request" || error.code === "timeout") {
    say("unsupported", { code: error.code, message: error.message });
    alice.close();
    bob.close();
    process.exit(0);
  }
  throw error;
}
const events = [];
const aliceSub = alice.subscribe(topic, () => {}, { presence: true });
aliceSub.on("join", (e) => events.push(`join ${e.userId}`));
aliceSub.on("leave", (e) => events.push(`leave ${e.userId}`));
await aliceSub.ready();
const bobSub = bob.subscribe(topic, () => {}, { presence: true });
await bobSub.ready();
await until(() => events.includes("join bob"), 5000, "bob's join").catch(() => {});
const answer = await alice.presence(topic);
bobSub.unsubscribe();
// a leave is held back for the gateway's grace period (5 s by default)
await until(() => events.includes("leave bob"), 9000, "bob's leave").catch(() => {});
await sleep(100);
say("result", { events, count: answer.count, users: answer.users });
alice.close();
bob.close();
