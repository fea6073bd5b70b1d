// @ts-check
/**
 * A lean HTTP/1.1 client for the REST publisher, as `herald_bench.httpload`: keep-alive
 * connections, one request at a time on each, hand-built requests, answers read as a
 * status line, headers up to the blank line and `Content-Length` bytes of body.
 */

import net from "node:net";

const HEAD_LIMIT = 65536;
const EMPTY = Buffer.alloc(0);

export class HttpError extends Error {
  name = "HttpError";
}

/** @typedef {{status: number, body: Buffer}} Answer */
/** @typedef {(err: Error | null, answer: Answer | null) => void} AnswerCallback */

/** One keep-alive connection. */
export class Connection {
  /**
   * @param {string} host
   * @param {number} port
   * @returns {Promise<Connection>}
   */
  static open(host, port) {
    return new Promise((resolve, reject) => {
      const conn = new Connection(net.connect({ host, port, noDelay: true }));
      conn.socket.once("connect", () => resolve(conn));
      conn.socket.once("error", reject);
    });
  }

  /** @param {net.Socket} socket */
  constructor(socket) {
    this.socket = socket;
    this.closed = false;
    /** @type {Buffer} */
    this._buf = EMPTY;
    /** @type {AnswerCallback | null} */
    this._callback = null;
    this._closeAfter = false;
    socket.on("data", (data) => this._onData(data));
    socket.on("error", (err) => this._fail(err));
    socket.on("close", () => {
      this.closed = true;
      this._fail(new Error("ConnectionError: the server closed the connection"));
    });
  }

  /**
   * Write one complete request; `callback` gets the answer (or the error).
   * @param {string} raw
   * @param {AnswerCallback} callback
   */
  request(raw, callback) {
    if (this.closed || this._callback !== null) {
      callback(new Error(this.closed ? "the connection is closed" : "a request is in flight"), null);
      return;
    }
    this._callback = callback;
    this.socket.write(raw);
  }

  close() {
    this.closed = true;
    this.socket.destroy();
  }

  /** @param {Buffer} data */
  _onData(data) {
    const buf = this._buf.length ? Buffer.concat([this._buf, data]) : data;
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) {
      this._buf = buf;
      if (buf.length > HEAD_LIMIT) this._fail(new HttpError("the answer's head is too long"));
      return;
    }
    let status = 0;
    let length = 0;
    try {
      [status, length] = this._parseHead(buf.toString("latin1", 0, end));
    } catch (err) {
      this._fail(/** @type {Error} */ (err));
      return;
    }
    const start = end + 4;
    if (buf.length < start + length) {
      this._buf = buf;
      return;
    }
    const body = buf.subarray(start, start + length);
    this._buf = buf.length > start + length ? Buffer.from(buf.subarray(start + length)) : EMPTY;
    const callback = this._callback;
    this._callback = null;
    if (callback !== null) callback(null, { status, body });
    if (this._closeAfter) this.close();
  }

  /**
   * @param {string} head
   * @returns {[number, number]}
   */
  _parseHead(head) {
    const lines = head.split("\r\n");
    const parts = lines[0].split(" ");
    if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
      throw new HttpError(`not an HTTP/1.x status line: ${lines[0].slice(0, 60)}`);
    }
    let length = 0;
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i].slice(colon + 1).trim();
      if (name === "content-length") length = Number(value);
      else if (name === "transfer-encoding") throw new HttpError("chunked answers are not supported by the benchmark client");
      else if (name === "connection" && value.toLowerCase() === "close") this._closeAfter = true;
    }
    return [Number(parts[1]), length];
  }

  /** @param {Error} err */
  _fail(err) {
    const callback = this._callback;
    this._callback = null;
    if (callback !== null) callback(err, null);
    if (err instanceof HttpError) this.close();
  }
}
