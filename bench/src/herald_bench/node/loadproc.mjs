// @ts-check
/**
 * One load-generator process in Node, driven by the benchmark's parent
 * (`herald_bench.nodepool`): a JSON command per line on stdin, a JSON answer per line on
 * stdout. The commands and answers are those of `herald_bench.loadproc` (open, subscribe,
 * reset, count, collect, top_up, post, close, quit); byte fields of an answer (`samples`,
 * `hits`, `answers_us`, `accepted_local`) are base64.
 *
 * Node rather than Python because this process shares the machine with the servers it
 * measures: receiving a frame or writing a POST here costs a fraction of what the asyncio
 * load process spends, and what it does not spend the servers get.
 */

import crypto from "node:crypto";
import readline from "node:readline";

import { HeraldClient, NatsClient, Recorder } from "./clients.mjs";
import { mostCommon, rest } from "./rest.mjs";
import { calibrate } from "./ws.mjs";

const OPEN_TIMEOUT = 15_000;
const CLOSE_TIMEOUT = 5_000;
/** user ids of replacement clients start here, far from the ids of the first ones */
const REPLACEMENT_IDS = 10_000_000;

/** @typedef {HeraldClient | NatsClient} Client */

/**
 * An HS256 token for `sub`, as `herald_common.tokens.issue_token` signs it.
 * @param {string} secret
 * @param {string} sub
 * @param {string[]} topics
 */
function issueToken(secret, sub, topics) {
  const now = Math.floor(Date.now() / 1000);
  /** @type {Record<string, unknown>} */
  const payload = { sub, iat: now, exp: now + 3600 };
  if (topics.length) payload["topics"] = topics;
  const part = (/** @type {unknown} */ value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const signing = `${part({ alg: "HS256", typ: "JWT" })}.${part(payload)}`;
  return `${signing}.${crypto.createHmac("sha256", secret).update(signing).digest("base64url")}`;
}

/**
 * `promise`, or a TimeoutError after `ms`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @returns {Promise<T>}
 */
function within(promise, ms) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error("");
      err.name = "TimeoutError";
      reject(err);
    }, ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, timeout]).finally(() => clearTimeout(timer)));
}

/**
 * Run `work` over `items`, at most `limit` at a time.
 * @template T
 * @param {T[]} items
 * @param {number} limit
 * @param {(item: T) => Promise<void>} work
 */
async function gated(items, limit, work) {
  let index = 0;
  const runner = async () => {
    while (index < items.length) await work(items[index++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
}

/** @param {unknown} err */
function describe(err) {
  const e = err instanceof Error ? err : new Error(String(err));
  return `${e.name}: ${e.message}`.slice(0, 160);
}

/** @param {ArrayBufferView} view */
function b64(view) {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString("base64");
}

/**
 * `values` as little-endian int64s (what Python's `array('q')` holds).
 * @param {number[]} values
 */
function int64s(values) {
  const out = new Int32Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[2 * i] = v % 0x100000000 | 0;
    out[2 * i + 1] = Math.floor(v / 0x100000000);
  }
  return out;
}

function cpuSeconds() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

class LoadProcess {
  constructor() {
    this.recorder = new Recorder();
    /** @type {Client[]} */
    this.clients = [];
    this.topic = "";
    /** @type {Record<string, any>} */
    this.spec = {};
    this.replacements = 0;
    this.cpu0 = cpuSeconds();
    this.wall0 = performance.now();
  }

  /** @param {Record<string, any>} cmd */
  async handle(cmd) {
    switch (cmd["op"]) {
      case "open":
        this.spec = cmd;
        this.topic = cmd["topic"];
        return this.openMany(range(cmd["first"], cmd["first"] + Number(cmd["count"])));
      case "top_up":
        return this.topUp();
      case "subscribe":
        return this.subscribeAll(this.live(), Number(cmd["concurrency"] ?? 200));
      case "reset": {
        const size = Number(cmd["size"] ?? 0);
        this.recorder.reset(Number(cmd["base"] ?? 0), size);
        for (const client of this.clients) client.seen = new Uint8Array(size);
        calibrate();
        this.cpu0 = cpuSeconds();
        this.wall0 = performance.now();
        return { open: this.live().length };
      }
      case "count":
        return { count: this.recorder.count };
      case "collect":
        return this.collect();
      case "post": {
        const result = await rest(cmd["host"], Number(cmd["port"]), Number(cmd["connections"]), cmd["token"], cmd["plan"]);
        return {
          ...result,
          errors: mostCommon(result.errors),
          answers_us: b64(int64s(result.answers_us)),
          accepted_local: b64(result.accepted_local),
        };
      }
      case "close":
        return this.close();
      default:
        throw new Error(`unknown command ${JSON.stringify(cmd["op"])}`);
    }
  }

  live() {
    return this.clients.filter((c) => !c.isClosed);
  }

  /** @param {number[]} ids */
  async openMany(ids) {
    const spec = this.spec;
    /** @type {Array<[string, number, string]>} */
    const endpoints = spec["endpoints"];
    const herald = spec["kind"] === "herald";
    /** @type {string[]} */
    const grants = spec["grants"] ?? [];
    /** @type {Record<string, number>} */
    const errors = {};
    // Signed before the clock starts: the connect rate is about the server.
    const tokens = new Map(ids.map((n) => [n, herald ? issueToken(spec["secret"] ?? "", `bench-${n}`, grants) : ""]));
    const started = performance.now();
    await gated(ids, Number(spec["concurrency"] ?? 100), async (n) => {
      const [host, port, path] = endpoints[n % endpoints.length];
      const client = herald
        ? new HeraldClient(host, port, path, this.recorder)
        : new NatsClient(host, port, path, this.recorder);
      try {
        await within(client.authenticate(tokens.get(n) ?? ""), OPEN_TIMEOUT);
        this.clients.push(client);
      } catch (err) {
        const key = describe(err);
        errors[key] = (errors[key] ?? 0) + 1;
        client.abort();
      }
    });
    const failed = Object.values(errors).reduce((a, b) => a + b, 0);
    return { opened: ids.length - failed, failed, seconds: (performance.now() - started) / 1000, errors: mostCommon(errors) };
  }

  /** Replace the clients the server closed (slow consumers) with new, subscribed ones. */
  async topUp() {
    this.clients = this.live();
    const missing = Number(this.spec["count"] ?? 0) - this.clients.length;
    if (missing <= 0) return { opened: 0, failed: 0, seconds: 0, errors: {} };
    const known = this.clients.length;
    const first = REPLACEMENT_IDS + this.replacements;
    this.replacements += missing;
    const opened = await this.openMany(range(first, first + missing));
    await this.subscribeAll(this.clients.slice(known), 200);
    return opened;
  }

  /**
   * @param {Client[]} clients
   * @param {number} concurrency
   */
  async subscribeAll(clients, concurrency) {
    /** @type {Record<string, number>} */
    const errors = {};
    const started = performance.now();
    await gated(clients, concurrency, async (client) => {
      try {
        await within(client.subscribe(this.topic), OPEN_TIMEOUT);
      } catch (err) {
        const key = describe(err);
        errors[key] = (errors[key] ?? 0) + 1;
      }
    });
    const failed = Object.values(errors).reduce((a, b) => a + b, 0);
    return {
      subscribed: clients.length - failed,
      failed,
      seconds: (performance.now() - started) / 1000,
      errors: mostCommon(errors),
    };
  }

  collect() {
    /** @type {Record<string, number>} */
    const closes = {};
    for (const client of this.clients) {
      if (!client.isClosed) continue;
      const key = client.closeCode === null ? "None" : String(client.closeCode);
      closes[key] = (closes[key] ?? 0) + 1;
    }
    const r = this.recorder;
    return {
      count: r.count,
      unstamped: r.unstamped,
      last_ns: Math.round(r.lastNs),
      samples: b64(int64s(r.samples)),
      cpu_seconds: cpuSeconds() - this.cpu0,
      wall_seconds: (performance.now() - this.wall0) / 1000,
      open: this.live().length,
      closed: closes,
      duplicates: r.duplicates,
      strays: r.strays,
      hits: b64(r.hits),
    };
  }

  async close() {
    for (const client of this.clients) client.close();
    const pending = this.clients.filter((c) => !c.isClosed).map((c) => c.closed);
    if (pending.length) {
      await Promise.race([Promise.all(pending), new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT))]);
    }
    let aborted = 0;
    for (const client of this.clients) {
      if (!client.isClosed) {
        client.abort();
        aborted += 1;
      }
    }
    this.clients = [];
    return { aborted };
  }
}

/**
 * @param {number} from
 * @param {number} to
 */
function range(from, to) {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** @param {unknown} answer */
function reply(answer) {
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}

async function main() {
  calibrate();
  const proc = new LoadProcess();
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    /** @type {Record<string, any>} */
    const cmd = JSON.parse(line);
    if (cmd["op"] === "quit") {
      await proc.close();
      reply({ ok: true });
      break;
    }
    try {
      reply(await proc.handle(cmd));
    } catch (err) {
      reply({ error: describe(err) });
    }
  }
  process.exit(0);
}

await main();
