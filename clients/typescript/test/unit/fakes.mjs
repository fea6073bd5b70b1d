// A fake clock and a fake WebSocket: the client's protocol core driven without a network.

export class FakeClock {
  constructor(start = 1_700_000_000_000) {
    this.t = start;
    this.timers = new Map();
    this.seq = 0;
  }
  now() {
    return this.t;
  }
  setTimeout(fn, ms) {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn, id });
    return id;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  /** Move time on by `ms`, running every timer that falls due, in order, with promises settled in between. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = [...this.timers.values()].filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers.delete(due.id);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
    await settle();
  }
}

export async function settle() {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

export function fakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.listeners = { open: [], message: [], close: [], error: [] };
      this.closedWith = undefined;
      this.terminated = false;
      sockets.push(this);
    }
    addEventListener(type, fn) {
      this.listeners[type].push(fn);
    }
    fire(type, event) {
      for (const fn of this.listeners[type]) fn(event);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("not open");
      this.sent.push(JSON.parse(data));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }
    terminate() {
      this.terminated = true;
      this.readyState = 3;
    }
    // the server side
    open() {
      this.readyState = 1;
      this.fire("open", {});
    }
    receive(frame) {
      this.fire("message", { data: JSON.stringify(frame) });
    }
    serverClose(code, reason = "") {
      this.readyState = 3;
      this.fire("close", { code, reason });
    }
    framesOf(type) {
      return this.sent.filter((f) => f.type === type);
    }
    last() {
      return this.sent[this.sent.length - 1];
    }
  }
  return { FakeWebSocket, sockets };
}

/** An unsigned JWT-shaped token whose payload is `claims` (the client only reads `exp`). */
export function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.sig`;
}
