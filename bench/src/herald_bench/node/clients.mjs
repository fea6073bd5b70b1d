// @ts-check
/**
 * What the sockets of a load process count (`Recorder`, as `herald_bench.clients.Recorder`)
 * and the two kinds of socket: `HeraldClient` speaks Herald's JSON protocol to a gateway
 * (`auth`, then `subscribe`; a delivery is a text frame that starts with
 * `{"type":"message"`), `NatsClient` speaks the NATS text protocol to nats-server's
 * WebSocket listener (`CONNECT`, `SUB`, `MSG`, `PING`/`PONG`).
 *
 * Every payload carries `@t=<ns>;` (its publish instant) and, in a window, `@k=<id>;`.
 */

import { WsClient, deferred } from "./ws.mjs";

const STAMP = Buffer.from("@t=");
const SEQ = Buffer.from("@k=");
const SEMI = 0x3b;
const HERALD_MESSAGE_PREFIX = Buffer.from('{"type":"message"');

/**
 * The decimal number in `buf[start:end]`, or -1 if it is empty or holds another byte.
 * @param {Buffer} buf
 * @param {number} start
 * @param {number} end
 */
function digits(buf, start, end) {
  if (end <= start) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/**
 * Deliveries counted and latencies (microseconds) kept, for one load process. Without a
 * window every frame counts; with one (ids `base` … `base + size - 1`) only a socket's
 * first copy of an id counts, and `hits[i]` is how many sockets here have message `base + i`.
 */
export class Recorder {
  constructor() {
    /** @type {number[]} */
    this.samples = [];
    this.count = 0;
    this.unstamped = 0;
    this.lastNs = 0;
    this.base = 0;
    this.size = 0;
    this.hits = new Uint32Array(0);
    this.duplicates = 0;
    this.strays = 0;
  }

  reset(base = 0, size = 0) {
    this.samples = [];
    this.count = 0;
    this.unstamped = 0;
    this.lastNs = 0;
    this.base = base;
    this.size = size;
    this.hits = new Uint32Array(size);
    this.duplicates = 0;
    this.strays = 0;
  }

  /**
   * @param {Buffer} buf
   * @param {number} start
   * @param {number} end
   * @param {number} nowNs
   * @param {Uint8Array | null} seen
   */
  record(buf, start, end, nowNs, seen) {
    const i = buf.indexOf(STAMP, start);
    const j = i < 0 || i >= end ? -1 : buf.indexOf(SEMI, i + 3);
    const sent = j < 0 || j >= end ? -1 : digits(buf, i + 3, j);
    if (sent < 0) {
      this.count += 1;
      this.unstamped += 1;
      return;
    }
    if (this.size) {
      if (j + 4 > end || buf.compare(SEQ, 0, 3, j + 1, j + 4) !== 0) {
        this.strays += 1;
        return;
      }
      const e = buf.indexOf(SEMI, j + 4);
      const k = e < 0 || e >= end ? -1 : digits(buf, j + 4, e) - this.base;
      if (!(k >= 0 && k < this.size) || seen === null || seen.length !== this.size) {
        this.strays += 1;
        return;
      }
      if (seen[k]) {
        this.duplicates += 1;
        return;
      }
      seen[k] = 1;
      this.hits[k] += 1;
    }
    this.count += 1;
    this.lastNs = nowNs;
    this.samples.push(Math.floor((nowNs - sent) / 1000));
  }
}

export class ProtocolError extends Error {
  name = "ProtocolError";
}

/** @typedef {{resolve: (frame: Record<string, unknown>) => void, reject: (err: Error) => void}} Waiter */

export class HeraldClient extends WsClient {
  /**
   * @param {string} host
   * @param {number} port
   * @param {string} path
   * @param {Recorder} recorder
   */
  constructor(host, port, path, recorder) {
    super(host, port, path);
    this._recorder = recorder;
    /** @type {Map<string, Waiter>} */
    this._waiting = new Map();
    /** ids of the current window this socket has received (see `Recorder`) */
    this.seen = new Uint8Array(0);
  }

  /** @override @param {Buffer} buf @param {number} start @param {number} end @param {number} nowNs */
  onMessage(buf, start, end, nowNs) {
    if (end - start >= HERALD_MESSAGE_PREFIX.length && buf.compare(HERALD_MESSAGE_PREFIX, 0, 17, start, start + 17) === 0) {
      this._recorder.record(buf, start, end, nowNs, this.seen);
      return;
    }
    /** @type {unknown} */
    let frame;
    try {
      frame = JSON.parse(buf.toString("utf8", start, end));
    } catch {
      return;
    }
    if (typeof frame !== "object" || frame === null) return;
    const record = /** @type {Record<string, unknown>} */ (frame);
    const kind = record["type"];
    if (kind === "error") {
      const err = new ProtocolError(`${String(record["code"])}: ${String(record["message"])}`);
      for (const waiter of this._waiting.values()) waiter.reject(err);
      this._waiting.clear();
    } else if (typeof kind === "string") {
      const waiter = this._waiting.get(kind);
      if (waiter !== undefined) {
        this._waiting.delete(kind);
        waiter.resolve(record);
      }
    }
  }

  /** @override @param {Error | null} _err */
  onLost(_err) {
    const err = new Error(`closed with ${this.closeCode}`);
    for (const waiter of this._waiting.values()) waiter.reject(err);
    this._waiting.clear();
  }

  /**
   * @param {Record<string, unknown>} frame
   * @param {string} answer
   * @returns {Promise<Record<string, unknown>>}
   */
  request(frame, answer) {
    if (this.isClosed) return Promise.reject(new Error(`closed with ${this.closeCode}`));
    return new Promise((resolve, reject) => {
      this._waiting.set(answer, { resolve, reject });
      this.sendText(JSON.stringify(frame));
    });
  }

  /** @param {string} token */
  async authenticate(token) {
    await this.opened;
    await this.request({ type: "auth", token }, "auth_success");
  }

  /** @param {string} topic */
  async subscribe(topic) {
    await this.request({ type: "subscribe", topic }, "subscribed");
  }
}

const CRLF = Buffer.from("\r\n");
const MSG = Buffer.from("MSG ");

export class NatsClient extends WsClient {
  /**
   * @param {string} host
   * @param {number} port
   * @param {string} path
   * @param {Recorder} recorder
   */
  constructor(host, port, path, recorder) {
    super(host, port, path);
    this._recorder = recorder;
    /** @type {Buffer} */
    this._stream = Buffer.alloc(0);
    /** @type {Array<{resolve: () => void, reject: (err: Error) => void}>} */
    this._pongs = [];
    /** @type {string[]} */
    this.errors = [];
    this.seen = new Uint8Array(0);
    /** resolves once the server's INFO arrived */
    this._info = deferred();
  }

  /** @override @param {Buffer} payload @param {number} from @param {number} to @param {number} nowNs */
  onMessage(payload, from, to, nowNs) {
    const chunk = payload.subarray(from, to);
    const buf = this._stream.length ? Buffer.concat([this._stream, chunk]) : chunk;
    const end = buf.length;
    let pos = 0;
    while (pos < end) {
      const eol = buf.indexOf(CRLF, pos);
      if (eol < 0) break;
      if (buf.compare(MSG, 0, 4, pos, pos + 4) === 0) {
        const size = Number(buf.toString("latin1", buf.lastIndexOf(0x20, eol) + 1, eol));
        const bodyEnd = eol + 2 + size;
        if (bodyEnd + 2 > end) break;
        this._recorder.record(buf, eol + 2, bodyEnd, nowNs, this.seen);
        pos = bodyEnd + 2;
        continue;
      }
      const line = buf.toString("latin1", pos, eol);
      pos = eol + 2;
      if (line === "PING") {
        this.sendBinary("PONG\r\n");
      } else if (line === "PONG") {
        this._pongs.shift()?.resolve();
      } else if (line.startsWith("INFO")) {
        this._info.resolve(undefined);
      } else if (line.startsWith("-ERR")) {
        this.errors.push(line);
      }
    }
    this._stream = pos >= end ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
  }

  /** @override @param {Error | null} _err */
  onLost(_err) {
    const err = new Error(`closed with ${this.closeCode}`);
    for (const pong of this._pongs) pong.reject(err);
    this._pongs = [];
    this._info.reject(err);
  }

  /** Round trip: once the PONG is back, everything sent before it was processed. */
  ping() {
    if (this.isClosed) return Promise.reject(new Error(`closed with ${this.closeCode}`));
    return new Promise((resolve, reject) => {
      this._pongs.push({ resolve: () => resolve(undefined), reject });
      this.sendBinary("PING\r\n");
    });
  }

  /** CONNECT (the native listener runs without auth, so the token is not used). @param {string} _token */
  async authenticate(_token) {
    await this.opened;
    await this._info.promise;
    const connect = { verbose: false, pedantic: false, protocol: 1, headers: false, name: "herald-bench" };
    this.sendBinary(`CONNECT ${JSON.stringify(connect)}\r\n`);
    await this.ping();
    if (this.errors.length) throw new ProtocolError(this.errors[0]);
  }

  /** @param {string} subject */
  async subscribe(subject) {
    this.sendBinary(`SUB ${subject} 1\r\n`);
    await this.ping();
    if (this.errors.length) throw new ProtocolError(this.errors[0]);
  }
}
