// The pure parts: states, backoff, close-code policy, topic matching, tokens, resume bookkeeping, frames.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff } from "../../dist/backoff.js";
import { parseServerFrame } from "../../dist/frames.js";
import { decide } from "../../dist/policy.js";
import { ResumeTracker } from "../../dist/resume.js";
import { CLIENT_TRANSITIONS, IllegalTransitionError, StateMachine, SUBSCRIPTION_TRANSITIONS } from "../../dist/state.js";
import { expiresAt, refreshDelay } from "../../dist/token.js";
import { isExact, matches } from "../../dist/topics.js";
import { jwt } from "./fakes.mjs";

test("a state machine moves only along its table and reports each change", () => {
  const changes = [];
  const m = new StateMachine("disconnected", CLIENT_TRANSITIONS, (c) => changes.push(`${c.from}>${c.to}`));
  m.to("connecting");
  m.to("connected");
  assert.throws(() => m.to("connecting"), IllegalTransitionError);
  m.to("closed");
  assert.throws(() => m.to("disconnected"), /closed -> disconnected/);
  assert.deepEqual(changes, ["disconnected>connecting", "connecting>connected", "connected>closed"]);
  const s = new StateMachine("unsubscribed", SUBSCRIPTION_TRANSITIONS, () => {});
  assert.throws(() => s.to("subscribed"), IllegalTransitionError);
});

test("backoff is full jitter, doubling from min to max, longer after a limit", () => {
  const top = new Backoff({ minDelayMs: 500, maxDelayMs: 20_000, limitedDelayMs: 5_000 }, () => 0.999999);
  const ceilings = Array.from({ length: 8 }, () => Math.round(top.next()));
  assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
  top.reset();
  assert.equal(Math.round(top.next()), 500);
  const bottom = new Backoff({}, () => 0);
  assert.equal(bottom.next(), 0);
  assert.equal(bottom.next(true), 5000);
  const mid = new Backoff({}, () => 0.5);
  assert.equal(mid.next(), 250);
  assert.throws(() => new Backoff({ minDelayMs: 0 }), RangeError);
});

test("close codes: reconnect, back off longer, renew the token, or stay down", () => {
  for (const code of [1000, 1001, 1006, 1009, 1011, 4009, 4000]) assert.equal(decide(code, "").kind, "retry", String(code));
  assert.equal(decide(4008, "").kind, "retry_limited");
  assert.equal(decide(4001, "").kind, "retry_fresh_token");
  const stop = decide(4003, "bye");
  assert.equal(stop.kind, "stop");
  assert.equal(stop.code, "disconnected");
  assert.match(stop.message, /operator/);
});

test("patterns match as the gateway reads them", () => {
  assert.ok(matches("a.b", "a.b"));
  assert.ok(matches("a.*", "a.b"));
  assert.ok(!matches("a.*", "a.b.c"));
  assert.ok(matches("a.**", "a.b.c"));
  assert.ok(!matches("a.**", "a"));
  assert.ok(matches("*.b.*", "x.b.y"));
  assert.ok(!matches("a.b", "a.c"));
  assert.ok(!matches("a.b.c", "a.b"));
  assert.ok(isExact("a.b"));
  assert.ok(!isExact("a.*"));
});

test("a token's exp is read from its payload, and refreshed before it with a margin", () => {
  assert.equal(expiresAt(jwt({ sub: "u", exp: 1000 })), 1_000_000);
  assert.equal(expiresAt("not-a-jwt"), undefined);
  assert.equal(expiresAt(jwt({ sub: "u" })), undefined);
  assert.equal(expiresAt("a.!!!.c"), undefined);
  assert.equal(refreshDelay(100_000, 0, 30_000), 70_000);
  assert.equal(refreshDelay(10_000, 0, 30_000), 5_000); // short-lived: halfway
  assert.equal(refreshDelay(0, 5, 30_000), 0);
});

test("resume bookkeeping drops what was handed over and resumes from the highest offset", () => {
  const t = new ResumeTracker();
  assert.equal(t.position, undefined);
  assert.ok(t.accept("a", 5, "e1"));
  assert.ok(t.accept("b", 7, "e1"));
  assert.ok(!t.accept("a", 5, "e1"));
  assert.ok(!t.accept("a", 3, "e1"));
  assert.ok(t.accept("a", 9, "e1"));
  assert.deepEqual(t.position, { offset: 9, epoch: "e1" });
  assert.ok(t.accept("a", 1, "e2"), "a new epoch starts over");
  assert.deepEqual(t.position, { offset: 1, epoch: "e2" });
  const small = new ResumeTracker(2);
  small.accept("x", 1, "e");
  small.accept("y", 2, "e");
  small.accept("z", 3, "e");
  assert.ok(small.accept("x", 1, "e"), "the least recently used topic was forgotten");
  assert.ok(!small.accept("z", 3, "e"));
});

test("frames are read defensively; unknown ones are ignored", () => {
  assert.deepEqual(parseServerFrame('{"type":"message","topic":"a","data":1,"offset":3,"epoch":"e","x":1}'), {
    type: "message",
    topic: "a",
    data: 1,
    offset: 3,
    epoch: "e",
  });
  assert.equal(parseServerFrame('{"type":"message","topic":"a","offset":"3","epoch":"e"}'), undefined);
  assert.equal(parseServerFrame("[1]"), undefined);
  assert.equal(parseServerFrame("nope"), undefined);
  assert.equal(parseServerFrame('{"type":"future_frame"}'), undefined);
  assert.deepEqual(parseServerFrame('{"type":"subscribed","topic":"a","id":2,"recovered":false}'), {
    type: "subscribed",
    topic: "a",
    id: 2,
    recovered: false,
  });
  assert.equal(parseServerFrame('{"type":"presence","topic":"a","users":[1]}'), undefined);
  assert.deepEqual(parseServerFrame('{"type":"presence","topic":"a","users":["u"],"id":1}'), {
    type: "presence",
    topic: "a",
    count: 1,
    users: ["u"],
    id: 1,
  });
  assert.equal(parseServerFrame('{"type":"presence","topic":"a"}'), undefined);
});
