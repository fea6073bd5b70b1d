// @ts-check
/**
 * The REST publisher of a load process, as `herald_bench.publishers.rest`: request `r` of
 * the plan is due at `start + r / rate` and carries messages `first + (r * batch + j) * stride`,
 * stamped just before its write. Requests wait for one of at most `connections` keep-alive
 * connections; what could not be written by the end of the window is *not sent*, answers
 * still missing `answer_wait` seconds after the schedule are *unanswered*.
 */

import { Connection } from "./http.mjs";
import { wallNs } from "./ws.mjs";

/** at most this many requests written or waiting for a connection */
const MAX_IN_FLIGHT = 512;

/** @type {Record<string, [string, number]>} the kinds: path and the status of success */
export const REST_KINDS = {
  publish: ["/api/publish", 202],
  batch: ["/api/publish/batch", 202],
  message: ["/api/messages", 201],
};

/**
 * @typedef {{kind: string, target: string, rate: number, seconds: number, size: number,
 *   first: number, stride: number, batch: number, answer_wait: number}} RestPlan
 */

/**
 * @param {Record<string, number>} counter
 * @param {string} key
 */
function bump(counter, key) {
  counter[key] = (counter[key] ?? 0) + 1;
}

/** @param {Record<string, number>} counter */
export function mostCommon(counter, n = 3) {
  return Object.fromEntries(Object.entries(counter).sort((a, b) => b[1] - a[1]).slice(0, n));
}

/**
 * POST `plan` over up to `connections` connections to `host:port`.
 * @param {string} host
 * @param {number} port
 * @param {number} connections
 * @param {string} token
 * @param {RestPlan} plan
 */
export function rest(host, port, connections, token, plan) {
  const [path, ok] = REST_KINDS[plan.kind];
  const batch = plan.kind === "batch" ? plan.batch : 1;
  const requests = Math.max(1, Math.ceil((plan.rate * plan.seconds) / plan.batch));
  const rate = requests / plan.seconds;
  const pad = "x".repeat(Math.max(0, plan.size - 24));
  const target = JSON.stringify(plan.target);
  const headStart = `POST ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: `;
  const out = {
    offered: requests * batch,
    accepted: 0,
    failed: 0,
    unsent: 0,
    unanswered: 0,
    start_ns: 0,
    seconds: 0,
    /** @type {Record<string, number>} */
    statuses: {},
    /** @type {Record<string, number>} */
    errors: {},
    /** @type {number[]} */
    answers_us: [],
    accepted_local: new Uint8Array(requests * batch),
  };

  /** @param {number} seq @param {string} stampNs */
  const item = (seq, stampNs) =>
    plan.kind === "message"
      ? `{"content":"@t=${stampNs};@k=${seq};${pad}","recipientId":${target}}`
      : `{"topic":${target},"data":{"p":"@t=${stampNs};@k=${seq};${pad}"}}`;

  /** @param {number} r @param {string} stampNs */
  const body = (r, stampNs) => {
    if (plan.kind !== "batch") return item(plan.first + r * plan.stride, stampNs);
    const items = [];
    for (let j = 0; j < batch; j++) items.push(item(plan.first + (r * batch + j) * plan.stride, stampNs));
    return `{"items":[${items.join(",")}]}`;
  };

  /** @type {Connection[]} */
  const free = [];
  /** @type {Set<Connection>} */
  const busy = new Set();
  let opening = 0;
  /** @type {number[]} requests due but waiting for a connection */
  const waiting = [];
  let next = 0;
  let scheduleDone = false;
  const start = performance.now();
  const cutoff = start + plan.seconds * 1000;
  out.start_ns = Math.round(wallNs());

  return new Promise((resolve) => {
    /** @type {NodeJS.Timeout | null} */
    let timer = null;
    /** @type {NodeJS.Timeout | null} */
    let settleTimer = null;

    const finish = () => {
      if (settleTimer !== null) clearTimeout(settleTimer);
      if (timer !== null) clearTimeout(timer);
      out.unanswered = (busy.size + waiting.length) * batch;
      for (const conn of [...busy, ...free]) conn.close();
      out.seconds = (performance.now() - start) / 1000;
      resolve(out);
    };

    const maybeFinish = () => {
      if (scheduleDone && busy.size === 0 && waiting.length === 0 && opening === 0) finish();
    };

    /** @param {Connection} conn @param {number} r */
    const send = (conn, r) => {
      busy.add(conn);
      const t0 = wallNs();
      const data = body(r, String(Math.round(t0)));
      conn.request(`${headStart}${Buffer.byteLength(data)}\r\n\r\n${data}`, (err, answer) => {
        busy.delete(conn);
        if (err !== null || answer === null) {
          bump(out.errors, `${err?.name ?? "Error"}: ${err?.message ?? "no answer"}`.slice(0, 100));
          conn.close();
        } else {
          out.answers_us.push(Math.floor((wallNs() - t0) / 1000));
          bump(out.statuses, String(answer.status));
          if (answer.status !== ok) {
            out.failed += batch;
            bump(out.errors, `RuntimeError: HTTP ${answer.status}: ${answer.body.toString("utf8", 0, 80)}`.slice(0, 100));
          } else if (plan.kind === "batch" && eventIds(answer.body) !== batch) {
            out.failed += batch;
            bump(out.errors, `RuntimeError: ${eventIds(answer.body)} eventIds for ${batch} items`);
          } else {
            out.accepted += batch;
            out.accepted_local.fill(1, r * batch, (r + 1) * batch);
          }
          if (!conn.closed) free.push(conn);
        }
        serveWaiting();
        maybeFinish();
      });
    };

    const serveWaiting = () => {
      while (waiting.length) {
        if (performance.now() > cutoff) {
          out.unsent += waiting.length * batch;
          waiting.length = 0;
          return;
        }
        let conn = free.pop();
        while (conn !== undefined && conn.closed) conn = free.pop();
        if (conn !== undefined) {
          send(conn, /** @type {number} */ (waiting.shift()));
        } else if (busy.size + opening < connections) {
          openOne();
          return;
        } else {
          return;
        }
      }
    };

    const openOne = () => {
      opening += 1;
      Connection.open(host, port).then(
        (conn) => {
          opening -= 1;
          free.push(conn);
          serveWaiting();
          maybeFinish();
        },
        (/** @type {Error} */ err) => {
          opening -= 1;
          bump(out.errors, `${err.name}: ${err.message}`.slice(0, 100));
          const r = waiting.shift();
          if (r !== undefined) out.unsent += batch;
          serveWaiting();
          maybeFinish();
        },
      );
    };

    // What still waits for a connection when the window closes is not sent. A timer may
    // fire a little early (libuv measures from the loop's cached time), so it checks.
    const closeWindow = () => {
      timer = null;
      const left = cutoff - performance.now();
      if (left >= 0) {
        timer = setTimeout(closeWindow, left + 1);
        return;
      }
      serveWaiting();
      maybeFinish();
    };

    const pump = () => {
      timer = null;
      const now = performance.now();
      if (now >= cutoff) {
        out.unsent += (requests - next) * batch;
        next = requests;
      }
      while (next < requests && start + (next * 1000) / rate <= now + 0.5) {
        if (busy.size + waiting.length >= MAX_IN_FLIGHT) break;
        waiting.push(next);
        next += 1;
      }
      serveWaiting();
      if (next >= requests) {
        scheduleDone = true;
        settleTimer = setTimeout(finish, plan.answer_wait * 1000);
        closeWindow();
        maybeFinish();
        return;
      }
      const due = start + (next * 1000) / rate;
      timer = setTimeout(pump, Math.max(0, Math.min(due, cutoff) - performance.now()));
    };

    pump();
  });
}

/** @param {Buffer} answer */
function eventIds(answer) {
  try {
    const parsed = JSON.parse(answer.toString("utf8"));
    return Array.isArray(parsed?.eventIds) ? parsed.eventIds.length : 0;
  } catch {
    return 0;
  }
}
