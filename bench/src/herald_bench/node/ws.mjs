// @ts-check
/**
 * A minimal WebSocket client (RFC 6455) over a TCP socket: the opening handshake, masked
 * frames out, unmasked frames in (fragmented or not), ping → pong, the closing handshake.
 * No extensions, no TLS, no UTF-8 checks: the load generator keeps its CPU for receiving.
 * The same subset as `herald_bench.wsclient`; what a message means is left to a subclass.
 */

import crypto from "node:crypto";
import net from "node:net";

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

const MAX_HANDSHAKE = 16384;
const EMPTY = Buffer.alloc(0);

/**
 * One final, masked client frame.
 * @param {number} opcode
 * @param {Buffer} payload
 * @returns {Buffer}
 */
export function encodeFrame(opcode, payload) {
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const frame = Buffer.allocUnsafe(2 + extra + 4 + length);
  frame[0] = 0x80 | opcode;
  if (extra === 0) {
    frame[1] = 0x80 | length;
  } else if (extra === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  const maskAt = 2 + extra;
  crypto.randomFillSync(frame, maskAt, 4);
  const start = maskAt + 4;
  for (let i = 0; i < length; i++) frame[start + i] = payload[i] ^ frame[maskAt + (i & 3)];
  return frame;
}

/**
 * @template T
 * @typedef {{promise: Promise<T>, resolve: (value: T) => void, reject: (reason: Error) => void}} Deferred
 */

/**
 * A promise with its settling functions; a rejection nobody awaits is not reported.
 * @template [T=void]
 * @returns {Deferred<T>}
 */
export function deferred() {
  /** @type {(value: T) => void} */
  let resolve = () => {};
  /** @type {(reason: Error) => void} */
  let reject = () => {};
  /** @type {Promise<T>} */
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export class HandshakeError extends Error {
  name = "HandshakeError";
}

/** Drives one WebSocket connection: `opened` resolves after the 101, `closed` at the end. */
export class WsClient {
  /**
   * @param {string} host
   * @param {number} port
   * @param {string} path
   */
  constructor(host, port, path) {
    /** @type {number | null} the code of the server's close frame (1005 without one) */
    this.closeCode = null;
    this.isClosed = false;
    /** @type {Buffer} */
    this._buf = EMPTY;
    this._upgraded = false;
    /** @type {Buffer[]} */
    this._fragments = [];
    /** resolves after the 101 (rejects if the handshake fails); settled once */
    this._opened = deferred();
    this.opened = this._opened.promise;
    this._openedDone = false;
    /** @type {Deferred<number | null>} resolves with the close code once the socket closed */
    this._closed = deferred();
    this.closed = this._closed.promise;
    const key = crypto.randomBytes(16).toString("base64");
    const request =
      `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on("connect", () => this.socket.write(request));
    this.socket.on("data", (data) => this._onData(data));
    this.socket.on("error", (err) => this._lost(err));
    this.socket.on("close", () => this._lost(null));
  }

  // subclass hooks

  /**
   * A complete text or binary message, `buf[start:end]`, read at `nowNs` (wall clock).
   * @param {Buffer} _buf
   * @param {number} _start
   * @param {number} _end
   * @param {number} _nowNs
   */
  onMessage(_buf, _start, _end, _nowNs) {}

  /** @param {Error | null} _err */
  onLost(_err) {}

  // sending

  /** @param {string | Buffer} text */
  sendText(text) {
    this._send(OP_TEXT, typeof text === "string" ? Buffer.from(text) : text);
  }

  /** @param {string | Buffer} data */
  sendBinary(data) {
    this._send(OP_BINARY, typeof data === "string" ? Buffer.from(data) : data);
  }

  /** Start the closing handshake; the socket closes when the server answers (or drops). */
  close(code = 1000) {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    this._send(OP_CLOSE, payload);
  }

  abort() {
    this.socket.destroy();
  }

  /**
   * @param {number} opcode
   * @param {Buffer} payload
   */
  _send(opcode, payload) {
    if (!this.isClosed && this.socket.writable) this.socket.write(encodeFrame(opcode, payload));
  }

  // receiving

  /** @param {Buffer} data */
  _onData(data) {
    let buf = this._buf.length ? Buffer.concat([this._buf, data]) : data;
    if (!this._upgraded) {
      const rest = this._handshake(buf);
      if (rest === null) {
        this._buf = buf;
        return;
      }
      buf = rest;
    }
    const now = wallNs();
    const end = buf.length;
    let pos = 0;
    while (end - pos >= 2) {
      const b0 = buf[pos];
      const b1 = buf[pos + 1];
      let length = b1 & 0x7f;
      let head = 2;
      if (length === 126) {
        if (end - pos < 4) break;
        length = buf.readUInt16BE(pos + 2);
        head = 4;
      } else if (length === 127) {
        if (end - pos < 10) break;
        length = Number(buf.readBigUInt64BE(pos + 2));
        head = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const need = head + (masked ? 4 : 0) + length;
      if (end - pos < need) break;
      let start = pos + head;
      let frameBuf = buf;
      if (masked) {
        // servers must not mask, but unmasking costs little to support
        const mask = buf.subarray(start, start + 4);
        frameBuf = Buffer.allocUnsafe(length);
        for (let i = 0; i < length; i++) frameBuf[i] = buf[start + 4 + i] ^ mask[i & 3];
        start = 0;
      }
      pos += need;
      this._frame(b0 & 0x80, b0 & 0x0f, frameBuf, start, start + length, now);
    }
    this._buf = pos >= end ? EMPTY : Buffer.from(buf.subarray(pos));
  }

  /**
   * The bytes after the 101's head, or null while the head is incomplete (or failed).
   * @param {Buffer} buf
   * @returns {Buffer | null}
   */
  _handshake(buf) {
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) {
      if (buf.length > MAX_HANDSHAKE) this._fail(new HandshakeError("oversized handshake answer"));
      return null;
    }
    const status = buf.toString("latin1", 0, buf.indexOf("\r\n"));
    if (!(status + " ").includes(" 101 ")) {
      this._fail(new HandshakeError(status));
      return null;
    }
    this._upgraded = true;
    this._settleOpened(null);
    return buf.subarray(end + 4);
  }

  /**
   * @param {number} fin
   * @param {number} opcode
   * @param {Buffer} buf
   * @param {number} start
   * @param {number} end
   * @param {number} now
   */
  _frame(fin, opcode, buf, start, end, now) {
    if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (fin) this.onMessage(buf, start, end, now);
      else this._fragments = [Buffer.from(buf.subarray(start, end))];
    } else if (opcode === OP_CONTINUATION) {
      this._fragments.push(Buffer.from(buf.subarray(start, end)));
      if (fin) {
        const message = Buffer.concat(this._fragments);
        this._fragments = [];
        this.onMessage(message, 0, message.length, now);
      }
    } else if (opcode === OP_PING) {
      this._send(OP_PONG, Buffer.from(buf.subarray(start, end)));
    } else if (opcode === OP_CLOSE) {
      this.closeCode = end - start >= 2 ? buf.readUInt16BE(start) : 1005;
      this._send(OP_CLOSE, Buffer.from(buf.subarray(start, Math.min(end, start + 2))));
      this.socket.end();
    }
  }

  /** @param {Error} err */
  _fail(err) {
    this._settleOpened(err);
    this.abort();
  }

  /** @param {Error | null} err */
  _settleOpened(err) {
    if (this._openedDone) return;
    this._openedDone = true;
    if (err) this._opened.reject(err);
    else this._opened.resolve(undefined);
  }

  /** @param {Error | null} err */
  _lost(err) {
    if (this.isClosed) return;
    this.isClosed = true;
    this._settleOpened(err ?? new Error("closed during the handshake"));
    this.onLost(err);
    this._closed.resolve(this.closeCode);
  }
}

/** Wall-clock time in nanoseconds, the clock of Python's `time.time_ns()` (see `calibrate`). */
export function wallNs() {
  return (offsetMs + performance.now()) * 1e6;
}

let offsetMs = performance.timeOrigin;

/** Steps of `Date.now()` that `calibrate` times; it keeps the best. */
const CALIBRATION_STEPS = 8;

/**
 * Align `wallNs` with the system clock: `Date.now()` has millisecond steps, so the moment
 * it steps is the moment the wall clock crosses a whole millisecond. A pause between that
 * step and the `performance.now()` that follows it (the process preempted) would put the
 * offset early and every latency measured with it short, by up to the pause; such a pause
 * only ever lowers the offset, so the highest over several steps is the true one.
 */
export function calibrate() {
  let best = -Infinity;
  for (let i = 0; i < CALIBRATION_STEPS; i++) {
    const first = Date.now();
    let now = first;
    while (now === first) now = Date.now();
    best = Math.max(best, now - performance.now());
  }
  offsetMs = best;
}
