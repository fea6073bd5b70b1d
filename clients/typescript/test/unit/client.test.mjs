// The client's protocol core against a fake WebSocket and a fake clock.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthError,
  Client,
  ClosedError,
  ConnectionLostError,
  HeraldError,
  RequestTimeoutError,
  ServerError,
} from "../../dist/index.js";
import { FakeClock, fakeWebSocket, jwt, settle } from "./fakes.mjs";

const URL = "ws://gateway.test/ws";

function setup(options = {}) {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocket();
  const client = new Client(URL, { token: "t0", clock, random: () => 0.5, ...options }, FakeWebSocket);
  const states = [];
  client.on("state", (c) => states.push(c.to));
  return { clock, sockets, client, states };
}

/** Open socket `i` and answer its auth; returns the socket. */
async function accept(sockets, i, userId = "alice") {
  await settle();
  const ws = sockets[i];
  assert.ok(ws, `socket ${i} was opened`);
  ws.open();
  assert.equal(ws.sent[0].type, "auth", "auth is the first frame");
  ws.receive({ type: "auth_success", userId });
  await settle();
  return ws;
}

function msg(topic, offset, epoch = "e1", data = offset) {
  return { type: "message", topic, data, offset, epoch };
}

test("connect sends auth first and resolves on auth_success", async () => {
  const { sockets, client, states } = setup();
  const connected = client.connect();
  const ws = await accept(sockets, 0);
  await connected;
  assert.deepEqual(ws.sent[0], { type: "auth", token: "t0" });
  assert.equal(client.state, "connected");
  assert.equal(client.userId, "alice");
  assert.deepEqual(states, ["connecting", "connected"]);
});

test("messages reach the matching subscription once, in order", async () => {
  const { sockets, client } = setup();
  const got = [];
  const sub = client.subscribe("chat.room", (m) => got.push(m.offset));
  assert.equal(sub.state, "unsubscribed");
  client.connect();
  const ws = await accept(sockets, 0);
  const frame = ws.framesOf("subscribe")[0];
  assert.equal(frame.topic, "chat.room");
  assert.equal(frame.since, undefined);
  assert.equal(sub.state, "subscribing");
  ws.receive({ type: "subscribed", topic: "chat.room", id: frame.id });
  await sub.ready();
  assert.equal(sub.state, "subscribed");
  ws.receive(msg("chat.room", 3));
  ws.receive(msg("chat.room", 3));
  ws.receive(msg("chat.other", 4));
  ws.receive(msg("chat.room", 7));
  assert.deepEqual(got, [3, 7]);
  assert.deepEqual(sub.position, { offset: 7, epoch: "e1" });
});

test("after 1006 it reconnects, resubscribes with since, and drops replayed duplicates", async () => {
  const { clock, sockets, client, states } = setup();
  const got = [];
  const sub = client.subscribe("news.**", (m) => got.push(m.offset));
  const gaps = [];
  sub.on("gap", (g) => gaps.push(g));
  await Promise.all([client.connect(), accept(sockets, 0)]);
  const ws0 = sockets[0];
  ws0.receive({ type: "subscribed", topic: "news.**", id: ws0.framesOf("subscribe")[0].id });
  ws0.receive(msg("news.a", 10));
  ws0.receive(msg("news.b", 12));
  const disconnects = [];
  client.on("disconnect", (d) => disconnects.push(d.code));
  ws0.serverClose(1006);
  assert.equal(client.state, "disconnected");
  assert.equal(sub.state, "subscribing");
  assert.equal(sockets.length, 1);
  await clock.advance(250); // random 0.5 of the first 500 ms ceiling
  const ws1 = await accept(sockets, 1);
  const again = ws1.framesOf("subscribe")[0];
  assert.deepEqual(again.since, { offset: 12, epoch: "e1" });
  ws1.receive({ type: "subscribed", topic: "news.**", id: again.id, recovered: true });
  ws1.receive(msg("news.b", 12)); // already handed over
  ws1.receive(msg("news.a", 13));
  ws1.receive(msg("news.b", 14));
  assert.deepEqual(got, [10, 12, 13, 14]);
  assert.deepEqual(disconnects, [1006]);
  assert.equal(sub.recovered, true);
  assert.deepEqual(gaps, []);
  assert.deepEqual(states, ["connecting", "connected", "disconnected", "connecting", "connected"]);
});

test("recovered:false is a flag and an event on the subscription", async () => {
  const { clock, sockets, client } = setup();
  const sub = client.subscribe("t", () => {});
  const gaps = [];
  sub.on("gap", (g) => gaps.push(g.position));
  await Promise.all([client.connect(), accept(sockets, 0)]);
  sockets[0].receive({ type: "subscribed", topic: "t", id: sockets[0].framesOf("subscribe")[0].id });
  sockets[0].receive(msg("t", 5));
  sockets[0].serverClose(1001);
  await clock.advance(300);
  const ws1 = await accept(sockets, 1);
  ws1.receive({ type: "subscribed", topic: "t", id: ws1.framesOf("subscribe")[0].id, recovered: false });
  assert.equal(sub.recovered, false);
  assert.deepEqual(gaps, [{ offset: 5, epoch: "e1" }]);
});

test("a subscription that saw nothing resumes from the client's newest position when it was sent", async () => {
  const { clock, sockets, client } = setup();
  client.subscribe("busy", () => {});
  await Promise.all([client.connect(), accept(sockets, 0)]);
  sockets[0].receive(msg("busy", 40));
  const quiet = client.subscribe("quiet", () => {});
  assert.equal(sockets[0].framesOf("subscribe")[1].since, undefined);
  sockets[0].receive(msg("busy", 41));
  sockets[0].serverClose(1011);
  await clock.advance(300);
  const ws1 = await accept(sockets, 1);
  const frames = Object.fromEntries(ws1.framesOf("subscribe").map((f) => [f.topic, f.since]));
  assert.deepEqual(frames.busy, { offset: 41, epoch: "e1" });
  assert.deepEqual(frames.quiet, { offset: 40, epoch: "e1" });
  assert.deepEqual(quiet.position, { offset: 40, epoch: "e1" });
});

test("a resubscribe without any position is reported as a possible gap", async () => {
  const { clock, sockets, client } = setup();
  const sub = client.subscribe("t", () => {});
  let gaps = 0;
  sub.on("gap", () => gaps++);
  await Promise.all([client.connect(), accept(sockets, 0)]);
  sockets[0].receive({ type: "subscribed", topic: "t", id: sockets[0].framesOf("subscribe")[0].id });
  assert.equal(gaps, 0);
  sockets[0].serverClose(4009);
  await clock.advance(300);
  const ws1 = await accept(sockets, 1);
  ws1.receive({ type: "subscribed", topic: "t", id: ws1.framesOf("subscribe")[0].id });
  assert.equal(gaps, 1);
  assert.equal(sub.recovered, false);
});

test("overlapping patterns: each subscription gets a message once, even through two replays", async () => {
  const { clock, sockets, client } = setup();
  const wide = [];
  const narrow = [];
  client.subscribe("news.*", (m) => wide.push(m.offset));
  client.subscribe("news.sport", (m) => narrow.push(m.offset));
  await Promise.all([client.connect(), accept(sockets, 0)]);
  // the gateway sends each message once per socket
  sockets[0].receive(msg("news.sport", 1));
  sockets[0].receive(msg("news.tech", 2));
  sockets[0].serverClose(1006);
  await clock.advance(300);
  const ws1 = await accept(sockets, 1);
  const [a, b] = ws1.framesOf("subscribe");
  assert.deepEqual(a.since, { offset: 2, epoch: "e1" });
  assert.deepEqual(b.since, { offset: 1, epoch: "e1" });
  ws1.receive({ type: "subscribed", topic: "news.*", id: a.id, recovered: true });
  ws1.receive(msg("news.sport", 3)); // replay of news.*
  ws1.receive({ type: "subscribed", topic: "news.sport", id: b.id, recovered: true });
  ws1.receive(msg("news.sport", 3)); // replay of news.sport: the same message again
  ws1.receive(msg("news.sport", 5)); // live
  assert.deepEqual(wide, [1, 2, 3, 5]);
  assert.deepEqual(narrow, [1, 3, 5]);
});

test("one subscription per pattern; unsubscribe sends the frame and ends it", async () => {
  const { sockets, client } = setup();
  await Promise.all([client.connect(), accept(sockets, 0)]);
  const got = [];
  const sub = client.subscribe("a", (m) => got.push(m.offset));
  assert.throws(() => client.subscribe("a", () => {}), (e) => e instanceof HeraldError && e.code === "already_subscribed");
  sockets[0].receive({ type: "subscribed", topic: "a", id: sockets[0].framesOf("subscribe")[0].id });
  sub.unsubscribe();
  assert.equal(sockets[0].last().type, "unsubscribe");
  assert.equal(sub.state, "unsubscribed");
  sockets[0].receive(msg("a", 9));
  assert.deepEqual(got, []);
  client.subscribe("a", () => {}); // the pattern is free again
});

test("a refused subscription ends with the gateway's error; one ended by the gateway too", async () => {
  const { sockets, client } = setup();
  await Promise.all([client.connect(), accept(sockets, 0)]);
  const refused = client.subscribe("secret", () => {});
  const ready = refused.ready();
  sockets[0].receive({ type: "error", code: "forbidden", message: "no", id: sockets[0].last().id });
  await assert.rejects(ready, (e) => e instanceof ServerError && e.code === "forbidden");
  assert.equal(refused.state, "unsubscribed");
  assert.equal(client.subscriptions.has("secret"), false);
  const ended = client.subscribe("messages.channel.c1", () => {});
  sockets[0].receive({ type: "subscribed", topic: "messages.channel.c1", id: sockets[0].last().id });
  const errors = [];
  ended.on("error", (e) => errors.push(e.code));
  sockets[0].receive({ type: "unsubscribed", topic: "messages.channel.c1" });
  assert.equal(ended.state, "unsubscribed");
  assert.deepEqual(errors, ["unsubscribed"]);
});

test("publish resolves on published with its id; an error with its id rejects it", async () => {
  const { sockets, client } = setup();
  await Promise.all([client.connect(), accept(sockets, 0)]);
  const one = client.publish("chat.x", { text: "hi" });
  const two = client.publish("messages.user.bob", 1);
  const [f1, f2] = sockets[0].framesOf("message");
  assert.deepEqual(f1.data, { text: "hi" });
  assert.notEqual(f1.id, f2.id);
  sockets[0].receive({ type: "error", code: "forbidden", message: "reserved", id: f2.id });
  sockets[0].receive({ type: "published", topic: "chat.x", offset: 77, id: f1.id });
  assert.equal(await one, 77);
  await assert.rejects(two, (e) => e instanceof ServerError && e.code === "forbidden" && e.message === "reserved");
});

test("publish times out with RequestTimeoutError; a lost socket fails it with ConnectionLostError", async () => {
  const { clock, sockets, client } = setup({ requestTimeoutMs: 1000 });
  await Promise.all([client.connect(), accept(sockets, 0)]);
  const late = client.publish("a", 1);
  const rejected = assert.rejects(late, RequestTimeoutError);
  await clock.advance(1001);
  await rejected;
  const cut = client.publish("a", 2);
  sockets[0].serverClose(1006);
  await assert.rejects(cut, ConnectionLostError);
});

test("a publish made while disconnected waits for the connection", async () => {
  const { sockets, client } = setup();
  const p = client.publish("a", 1);
  client.connect();
  const ws = await accept(sockets, 0);
  const f = ws.framesOf("message")[0];
  ws.receive({ type: "published", topic: "a", offset: 3, id: f.id });
  assert.equal(await p, 3);
});

test("4003 closes the client for good", async () => {
  const { clock, sockets, client } = setup();
  const sub = client.subscribe("a", () => {});
  await Promise.all([client.connect(), accept(sockets, 0)]);
  const pending = client.publish("a", 1);
  sockets[0].serverClose(4003, "operator");
  await assert.rejects(pending);
  await clock.advance(120_000);
  assert.equal(sockets.length, 1);
  assert.equal(client.state, "closed");
  assert.ok(client.closeError instanceof ClosedError);
  assert.equal(client.closeError.code, "disconnected");
  assert.equal(sub.state, "unsubscribed");
  await assert.rejects(client.connect(), ClosedError);
  assert.throws(() => client.subscribe("b", () => {}), ClosedError);
});

test("close() by the app: closed, no reconnect, pending calls rejected", async () => {
  const { clock, sockets, client } = setup();
  await Promise.all([client.connect(), accept(sockets, 0)]);
  const p = client.publish("a", 1);
  client.close();
  await assert.rejects(p, ClosedError);
  assert.equal(sockets[0].closedWith.code, 1000);
  await clock.advance(60_000);
  assert.equal(sockets.length, 1);
  assert.equal(client.state, "closed");
});

test("a static token refused with 4001 closes with AuthError, also during connect", async () => {
  const { clock, sockets, client } = setup();
  const connecting = client.connect();
  await settle();
  sockets[0].open();
  sockets[0].receive({ type: "error", code: "unauthorized", message: "bad token" });
  sockets[0].serverClose(4001);
  await assert.rejects(connecting, AuthError);
  await clock.advance(60_000);
  assert.equal(sockets.length, 1);
  assert.equal(client.state, "closed");
});

test("4001 with getToken reconnects with a fresh token", async () => {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocket();
  let n = 0;
  const client = new Client(URL, { getToken: async () => `tok${n++}`, clock, random: () => 0.5 }, FakeWebSocket);
  await Promise.all([client.connect(), accept(sockets, 0)]);
  assert.equal(sockets[0].sent[0].token, "tok0");
  sockets[0].serverClose(4001);
  await clock.advance(300);
  await accept(sockets, 1);
  assert.equal(sockets[1].sent[0].token, "tok1");
  assert.equal(client.state, "connected");
});

test("4008 waits longer than the usual backoff", async () => {
  const { clock, sockets, client } = setup({ limitedReconnectDelayMs: 5000 });
  const delays = [];
  client.on("reconnecting", (r) => delays.push(r.delayMs));
  await Promise.all([client.connect(), accept(sockets, 0)]);
  sockets[0].serverClose(4008);
  await clock.advance(5000);
  assert.equal(sockets.length, 1, "not yet");
  await clock.advance(300);
  assert.equal(sockets.length, 2);
  assert.deepEqual(delays, [5250]);
});

test("backoff grows while attempts fail and starts small after a success", async () => {
  const { clock, sockets, client } = setup();
  const delays = [];
  client.on("reconnecting", (r) => delays.push(r.delayMs));
  await Promise.all([client.connect(), accept(sockets, 0)]);
  sockets[0].serverClose(1006);
  for (const [i, wait] of [[1, 250], [2, 500], [3, 1000]]) {
    await clock.advance(wait);
    assert.equal(sockets.length, i + 1);
    sockets[i].serverClose(1006); // fails before auth
  }
  await clock.advance(2000);
  await accept(sockets, 4);
  sockets[4].serverClose(1001);
  assert.deepEqual(delays, [250, 500, 1000, 2000, 250]);
});

test("the token is refreshed on the live socket before exp; no reconnect", async () => {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocket();
  const exp = (s) => Math.floor(clock.now() / 1000) + s;
  const tokens = [];
  const getToken = () => {
    const t = jwt({ sub: "alice", exp: exp(60) });
    tokens.push(t);
    return t;
  };
  const client = new Client(URL, { getToken, clock, refreshMarginMs: 30_000, pingIntervalMs: 1e9 }, FakeWebSocket);
  const refreshed = [];
  client.on("refreshed", (r) => refreshed.push(r.expiresAt));
  await Promise.all([client.connect(), accept(sockets, 0)]);
  await clock.advance(29_000);
  assert.equal(sockets[0].framesOf("auth").length, 1);
  await clock.advance(1_500);
  const auths = sockets[0].framesOf("auth");
  assert.equal(auths.length, 2, "a second auth on the same socket");
  assert.equal(auths[1].token, tokens[1]);
  sockets[0].receive({ type: "auth_success", userId: "alice" });
  await settle();
  assert.equal(refreshed.length, 1);
  await clock.advance(31_000);
  assert.equal(sockets[0].framesOf("auth").length, 3, "and again before the new exp");
  assert.equal(sockets.length, 1);
  assert.equal(client.state, "connected");
});

test("a refused refresh reconnects with a new token", async () => {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocket();
  let n = 0;
  const getToken = () => jwt({ sub: "alice", exp: Math.floor(clock.now() / 1000) + 10, n: n++ });
  const client = new Client(URL, { getToken, clock, random: () => 0.5 }, FakeWebSocket);
  await Promise.all([client.connect(), accept(sockets, 0)]);
  await clock.advance(5_000);
  assert.equal(sockets[0].framesOf("auth").length, 2);
  sockets[0].receive({ type: "error", code: "unauthorized", message: "bad token" });
  await settle();
  assert.ok(sockets[0].terminated);
  await clock.advance(300);
  await accept(sockets, 1);
  assert.equal(client.state, "connected");
  assert.equal(n, 3);
});

test("an expired-token notice triggers a refresh at once", async () => {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocket();
  const client = new Client(URL, { getToken: () => "opaque-token", clock }, FakeWebSocket);
  await Promise.all([client.connect(), accept(sockets, 0)]);
  sockets[0].receive({ type: "error", code: "unauthorized", message: "token expired; send auth" });
  await settle();
  assert.equal(sockets[0].framesOf("auth").length, 2);
});

test("a silent socket is noticed within the ping interval plus the margin and replaced", async () => {
  const { clock, sockets, client } = setup({ pingIntervalMs: 10_000, pongTimeoutMs: 3_000 });
  await Promise.all([client.connect(), accept(sockets, 0)]);
  await clock.advance(10_000);
  assert.equal(sockets[0].framesOf("ping").length, 1);
  sockets[0].receive({ type: "pong" });
  await clock.advance(10_000);
  assert.equal(sockets[0].framesOf("ping").length, 2);
  assert.equal(client.state, "connected");
  await clock.advance(2_999);
  assert.equal(client.state, "connected");
  await clock.advance(1);
  assert.equal(client.state, "disconnected");
  assert.ok(sockets[0].terminated, "a dead socket is terminated, not waited for");
  await clock.advance(300);
  assert.equal(sockets.length, 2);
});

test("a socket that never authenticates is given up after the connect timeout", async () => {
  const { clock, sockets, client } = setup({ connectTimeoutMs: 2_000 });
  client.connect();
  await settle();
  sockets[0].open();
  await clock.advance(2_000);
  assert.equal(client.state, "disconnected");
  await clock.advance(300);
  assert.equal(sockets.length, 2);
});

test("presence: join/leave events on a presence subscription, and presence queries", async () => {
  const { clock, sockets, client } = setup();
  assert.throws(() => client.subscribe("room.*", () => {}, { presence: true }), HeraldError);
  const sub = client.subscribe("room.1", () => {}, { presence: true });
  await Promise.all([client.connect(), accept(sockets, 0)]);
  assert.equal(sockets[0].framesOf("subscribe")[0].presence, true);
  const seen = [];
  sub.on("join", (e) => seen.push(`+${e.userId}`));
  sub.on("leave", (e) => seen.push(`-${e.userId}`));
  sockets[0].receive({ type: "join", topic: "room.1", userId: "bob" });
  sockets[0].receive({ type: "leave", topic: "room.1", userId: "bob" });
  sockets[0].receive({ type: "join", topic: "room.2", userId: "carol" });
  assert.deepEqual(seen, ["+bob", "-bob"]);
  const who = client.presence("room.1");
  const q = sockets[0].framesOf("presence")[0];
  assert.equal(q.topic, "room.1");
  sockets[0].receive({ type: "presence", topic: "room.1", count: 2, users: ["alice", "bob"], id: q.id });
  assert.deepEqual(await who, { topic: "room.1", count: 2, users: ["alice", "bob"] });
  // a query in flight when the socket drops is asked again on the next one
  const again = client.presence("room.1");
  sockets[0].serverClose(1006);
  await clock.advance(300);
  const ws1 = await accept(sockets, 1);
  const q2 = ws1.framesOf("presence")[0];
  ws1.receive({ type: "presence", topic: "room.1", count: 1500, id: q2.id }); // over the cap: no list
  assert.deepEqual(await again, { topic: "room.1", count: 1500 });
});

test("a throwing handler does not break delivery to others", async () => {
  const { sockets, client } = setup();
  const reported = [];
  globalThis.reportError = (e) => reported.push(e.message);
  try {
    const got = [];
    client.subscribe("a.*", () => {
      throw new Error("app bug");
    });
    client.subscribe("a.b", (m) => got.push(m.offset));
    await Promise.all([client.connect(), accept(sockets, 0)]);
    sockets[0].receive(msg("a.b", 1));
    assert.deepEqual(got, [1]);
    assert.deepEqual(reported, ["app bug"]);
  } finally {
    delete globalThis.reportError;
  }
});

test("without any WebSocket the client closes with a clear error", async () => {
  const clock = new FakeClock();
  const saved = globalThis.WebSocket;
  delete globalThis.WebSocket;
  try {
    const client = new Client(URL, { token: "t", clock });
    await assert.rejects(client.connect(), /no WebSocket/);
  } finally {
    if (saved !== undefined) globalThis.WebSocket = saved;
  }
  assert.throws(() => new Client(URL, {}), TypeError);
});

test("a listener that subscribes when connected sends its subscribe once", async () => {
  const { clock, sockets, client } = setup();
  client.subscribe("old", () => {});
  let added = false;
  client.on("state", ({ to }) => {
    if (to === "connected" && !added) {
      added = true;
      client.subscribe("new", () => {});
    }
  });
  await Promise.all([client.connect(), accept(sockets, 0)]);
  assert.deepEqual(sockets[0].framesOf("subscribe").map((f) => f.topic), ["old", "new"]);
  sockets[0].serverClose(1006);
  await clock.advance(300);
  const ws1 = await accept(sockets, 1);
  assert.deepEqual(ws1.framesOf("subscribe").map((f) => f.topic), ["old", "new"]);
});

test("a getToken that never settles is given up after the connect timeout; its late token is ignored", async () => {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocket();
  const pending = [];
  const getToken = () => new Promise((resolve) => pending.push(resolve));
  const client = new Client(URL, { getToken, clock, connectTimeoutMs: 1000, random: () => 0.5 }, FakeWebSocket);
  client.connect();
  await clock.advance(1000);
  assert.equal(client.state, "disconnected");
  await clock.advance(250);
  assert.equal(pending.length, 2, "a second attempt asked again");
  pending[0]("late-token");
  await settle();
  assert.equal(sockets.length, 0, "the abandoned attempt opened nothing");
  pending[1]("fresh-token");
  await accept(sockets, 0);
  assert.equal(sockets[0].sent[0].token, "fresh-token");
  assert.equal(client.state, "connected");
});
