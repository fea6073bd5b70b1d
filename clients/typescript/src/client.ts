/** The client: connection life cycle, reconnects, token refresh, frame routing. */

import { Backoff } from "./backoff.js";
import { type Clock, systemClock, Timer } from "./clock.js";
import { Emitter } from "./emitter.js";
import { AuthError, ClosedError, HeraldError, ServerError } from "./errors.js";
import {
  type ClientFrame,
  type Message,
  parseServerFrame,
  type Position,
  type Presence,
  type ServerFrame,
} from "./frames.js";
import { CloseCode, decide } from "./policy.js";
import { Requests } from "./requests.js";
import { platformWebSocket, Socket, type WebSocketConstructor } from "./socket.js";
import { CLIENT_TRANSITIONS, ClientState, type StateChange, StateMachine } from "./state.js";
import { type MessageHandler, type SubscribeOptions, Subscription } from "./subscription.js";
import { expiresAt, refreshDelay } from "./token.js";
import { isExact, matches } from "./topics.js";

/** Called before every connection and every refresh: return a fresh token. */
export type TokenSource = () => string | Promise<string>;

export interface ClientSettings {
  /** A WebSocket implementation where the platform has none (Node 20: the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** Upper bound of the first reconnect wait, ms (default 500). */
  minReconnectDelayMs?: number;
  /** Longest reconnect wait, ms (default 20000). */
  maxReconnectDelayMs?: number;
  /** Extra wait after close code 4008 (rate or connection limit), ms (default 5000). */
  limitedReconnectDelayMs?: number;
  /** How often an idle connection is checked with a `ping` frame, ms (default 15000). */
  pingIntervalMs?: number;
  /** How long after a `ping` with nothing received the socket counts as dead, ms (default 5000). */
  pongTimeoutMs?: number;
  /** Time for a socket to open and authenticate, ms (default 10000). */
  connectTimeoutMs?: number;
  /** How long `publish`, `presence` and a token refresh wait for their answer, ms (default 10000). */
  requestTimeoutMs?: number;
  /** Refresh a `getToken` token this long before its `exp` (at most halfway through its life), ms (default 30000). */
  refreshMarginMs?: number;
  /** @internal For tests: time and timers. */
  clock?: Clock;
  /** @internal For tests: the jitter's random source. */
  random?: () => number;
}

export type ClientOptions = ({ token: string; getToken?: undefined } | { getToken: TokenSource; token?: undefined }) &
  ClientSettings;

export interface ClientEvents {
  state: StateChange<ClientState>;
  /** A socket closed (`code` 4000: the SDK dropped it itself, see `reason`). */
  disconnect: { code: number; reason: string };
  /** The next connection attempt is in `delayMs`. */
  reconnecting: { delayMs: number; attempt: number };
  /** The token was refreshed on the live socket. */
  refreshed: { expiresAt: number | undefined };
  /** Something went wrong that no pending call owns (a gateway error without `id`, a failing `getToken`). */
  error: HeraldError;
}

export class Client extends Emitter<ClientEvents> {
  readonly url: string;
  /** The `sub` the gateway authenticated, once connected. */
  userId: string | undefined;
  /** Why the client closed, when it did. */
  closeError: HeraldError | undefined;

  private readonly getToken: TokenSource | undefined;
  private readonly staticToken: string | undefined;
  private readonly Impl: WebSocketConstructor | undefined;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly settings: Required<
    Pick<ClientSettings, "pingIntervalMs" | "pongTimeoutMs" | "connectTimeoutMs" | "requestTimeoutMs" | "refreshMarginMs">
  >;
  private readonly machine: StateMachine<ClientState>;
  private readonly subs = new Map<string, Subscription>();
  /** subscribe frame id -> the subscription and whether `since` went with it */
  private readonly subscribing = new Map<number, { sub: Subscription; resumed: boolean }>();
  private readonly requests: Requests;
  private readonly reconnectTimer: Timer;
  private readonly connectTimer: Timer;
  private readonly pingTimer: Timer;
  private readonly pongTimer: Timer;
  private readonly refreshTimer: Timer;
  private socket: Socket | undefined;
  private token: string | undefined;
  private refreshing = false;
  private attempt = 0;
  private nextId = 1;
  /** Counts connection attempts, so a slow `getToken` of an abandoned one is ignored. */
  private opening = 0;
  /** The newest position seen on any topic (offsets come from one stream). */
  private high: Position | undefined;
  private connectWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(url: string, options: ClientOptions, WebSocketImpl?: WebSocketConstructor) {
    super();
    this.url = url;
    if (typeof options.getToken === "function") this.getToken = options.getToken;
    else if (typeof options.token === "string" && options.token !== "") this.staticToken = options.token;
    else throw new TypeError("Client needs a token (string) or getToken (function)");
    this.Impl = WebSocketImpl ?? options.WebSocket ?? platformWebSocket();
    this.clock = options.clock ?? systemClock;
    this.backoff = new Backoff(
      {
        ...(options.minReconnectDelayMs !== undefined ? { minDelayMs: options.minReconnectDelayMs } : {}),
        ...(options.maxReconnectDelayMs !== undefined ? { maxDelayMs: options.maxReconnectDelayMs } : {}),
        ...(options.limitedReconnectDelayMs !== undefined ? { limitedDelayMs: options.limitedReconnectDelayMs } : {}),
      },
      options.random,
    );
    this.settings = {
      pingIntervalMs: options.pingIntervalMs ?? 15_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 5_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      refreshMarginMs: options.refreshMarginMs ?? 30_000,
    };
    this.requests = new Requests(this.clock);
    this.reconnectTimer = new Timer(this.clock);
    this.connectTimer = new Timer(this.clock);
    this.pingTimer = new Timer(this.clock);
    this.pongTimer = new Timer(this.clock);
    this.refreshTimer = new Timer(this.clock);
    this.machine = new StateMachine<ClientState>(ClientState.Disconnected, CLIENT_TRANSITIONS, (c) => this.emit("state", c));
  }

  get state(): ClientState {
    return this.machine.state;
  }

  /** The subscriptions currently held (or being resubscribed), by pattern. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.subs;
  }

  /**
   * Connect and authenticate. Resolves once connected (transient failures are retried
   * with backoff meanwhile); rejects if the client closes first (see {@link closeError}).
   */
  connect(): Promise<void> {
    if (this.state === ClientState.Closed) return Promise.reject(this.closeError ?? new ClosedError("client is closed"));
    if (this.state === ClientState.Connected) return Promise.resolve();
    const waiting = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this.state === ClientState.Disconnected && !this.reconnectTimer.armed) void this.open();
    return waiting;
  }

  /** Close for good: no reconnect; pending calls reject with {@link ClosedError}. */
  close(): void {
    this.shutdown(new ClosedError("closed by the app"), true);
  }

  /**
   * Subscribe to a topic or pattern; `handler` gets each matching message once, in order,
   * across reconnects. One subscription per pattern: a second one for the same pattern
   * throws (share the first).
   */
  subscribe(pattern: string, handler: MessageHandler, options: SubscribeOptions = {}): Subscription {
    if (this.state === ClientState.Closed) throw this.closeError ?? new ClosedError("client is closed");
    if (typeof pattern !== "string" || pattern === "") throw new HeraldError("a subscription needs a pattern", "invalid_topic");
    if (this.subs.has(pattern)) throw new HeraldError(`already subscribed to ${pattern}`, "already_subscribed");
    if (options.presence === true && !isExact(pattern)) {
      throw new HeraldError("presence needs an exact topic, not a pattern", "invalid_topic");
    }
    const sub = new Subscription(pattern, handler, options, (s) => this.leave(s));
    this.subs.set(pattern, sub);
    if (this.state === ClientState.Connected) this.sendSubscribe(sub);
    return sub;
  }

  /** Publish from this socket (the token needs a `publish` grant); resolves with the stored offset. */
  publish(topic: string, data: unknown): Promise<number> {
    if (this.state === ClientState.Closed) return Promise.reject(this.closeError ?? new ClosedError("client is closed"));
    const frame = { type: "message" as const, topic, data, id: this.nextId++ };
    return this.request<number>(frame, false, `publish to ${topic}`);
  }

  /** Who is subscribed to the exact `topic` now, on any gateway (needs a gateway with presence). */
  presence(topic: string): Promise<Presence> {
    if (this.state === ClientState.Closed) return Promise.reject(this.closeError ?? new ClosedError("client is closed"));
    const frame = { type: "presence" as const, topic, id: this.nextId++ };
    return this.request<Presence>(frame, true, `presence of ${topic}`);
  }

  private request<T>(frame: ClientFrame & { id: number }, repeatable: boolean, what: string): Promise<T> {
    const answer = this.requests.add<T>(frame, this.settings.requestTimeoutMs, repeatable, what);
    if (this.state === ClientState.Connected) this.flush();
    return answer;
  }

  private flush(): void {
    for (const frame of this.requests.unsent()) {
      if (!this.send(frame) && "id" in frame) this.requests.unsend(frame.id);
    }
  }

  private send(frame: ClientFrame): boolean {
    return this.socket?.send(frame) ?? false;
  }

  private leave(sub: Subscription): void {
    if (this.subs.get(sub.pattern) !== sub) return;
    this.subs.delete(sub.pattern);
    for (const [id, s] of this.subscribing) if (s.sub === sub) this.subscribing.delete(id);
    if (this.state === ClientState.Connected) this.send({ type: "unsubscribe", topic: sub.pattern, id: this.nextId++ });
    sub.end(undefined);
  }

  private sendSubscribe(sub: Subscription): void {
    const position = sub.sending(this.high);
    const id = this.nextId++;
    const frame: ClientFrame = {
      type: "subscribe",
      topic: sub.pattern,
      id,
      ...(position !== undefined ? { since: { offset: position.offset, epoch: position.epoch } } : {}),
      ...(sub.presence ? { presence: true } : {}),
    };
    this.subscribing.set(id, { sub, resumed: position !== undefined });
    this.send(frame);
  }

  private async fetchToken(): Promise<string> {
    if (this.getToken === undefined) return this.staticToken as string;
    const token = await this.getToken();
    if (typeof token !== "string" || token === "") throw new AuthError("getToken returned no token");
    return token;
  }

  private async open(): Promise<void> {
    this.machine.to(ClientState.Connecting);
    const attempt = ++this.opening;
    const current = () => this.opening === attempt && this.state === ClientState.Connecting;
    // The timeout covers getToken too: a callback that never settles must not stall the client.
    this.connectTimer.set(this.settings.connectTimeoutMs, () => this.lost(CloseCode.Dead, "no auth_success in time"));
    let token: string;
    try {
      token = await this.fetchToken();
    } catch (error) {
      if (!current()) return;
      this.connectTimer.clear();
      this.emit("error", error instanceof HeraldError ? error : new AuthError("getToken failed", error));
      this.machine.to(ClientState.Disconnected);
      this.scheduleReconnect(false);
      return;
    }
    if (!current()) return;
    if (this.Impl === undefined) {
      this.shutdown(new HeraldError("no WebSocket on this platform: pass one (e.g. the ws package's)", "closed"), false);
      return;
    }
    this.token = token;
    try {
      this.socket = new Socket(this.Impl, this.url, {
        open: () => this.send({ type: "auth", token }),
        text: (data) => this.onText(data),
        closed: (code, reason) => this.lost(code, reason),
      });
    } catch (error) {
      // A malformed URL throws at once: that will not get better by retrying.
      this.shutdown(new HeraldError(`cannot open ${this.url}: ${String(error)}`, "closed"), false);
    }
  }

  private onText(text: string): void {
    // Anything at all from the gateway shows the socket is alive.
    this.pongTimer.clear();
    const frame = parseServerFrame(text);
    if (frame !== undefined) this.handle(frame);
  }

  private handle(frame: ServerFrame): void {
    switch (frame.type) {
      case "auth_success":
        if (this.state === ClientState.Connecting) this.authenticated(frame.userId);
        else if (this.refreshing) this.refreshDone();
        return;
      case "subscribed": {
        const pending = typeof frame.id === "number" ? this.subscribing.get(frame.id) : undefined;
        if (pending === undefined) return;
        this.subscribing.delete(frame.id as number);
        pending.sub.subscribed(frame.recovered, pending.resumed);
        return;
      }
      case "unsubscribed": {
        // One without an id is the gateway ending a subscription (access revoked, token narrowed).
        if (frame.id !== undefined) return;
        const sub = this.subs.get(frame.topic);
        if (sub === undefined) return;
        this.subs.delete(frame.topic);
        sub.end(new HeraldError(`the gateway ended the subscription to ${frame.topic}`, "unsubscribed"));
        return;
      }
      case "message":
        this.route(frame);
        return;
      case "published":
        this.requests.resolve(frame.id, frame.offset);
        return;
      case "presence": {
        const { type: _type, id, ...answer } = frame;
        this.requests.resolve(id, answer);
        return;
      }
      case "join":
      case "leave":
        this.subs.get(frame.topic)?.presenceEvent(frame.type, frame.userId);
        return;
      case "error":
        this.onError(frame.code, frame.message, frame.id);
        return;
      case "pong":
        return;
    }
  }

  private route(frame: Message & { type: "message" }): void {
    const { type: _type, ...message } = frame;
    if (this.high === undefined || this.high.epoch !== message.epoch || message.offset > this.high.offset) {
      this.high = { offset: message.offset, epoch: message.epoch };
    }
    // The gateway sends a message once per socket even when several held patterns match
    // it; each subscription whose pattern matches gets it (once: its tracker drops repeats).
    for (const sub of this.subs.values()) {
      if (matches(sub.pattern, message.topic)) sub.deliver(message);
    }
  }

  private onError(code: string, text: string, id: unknown): void {
    const error = new ServerError(text, code);
    if (typeof id === "number") {
      const pending = this.subscribing.get(id);
      if (pending !== undefined) {
        this.subscribing.delete(id);
        if (this.subs.get(pending.sub.pattern) === pending.sub) this.subs.delete(pending.sub.pattern);
        pending.sub.end(error);
        return;
      }
      if (this.requests.has(id)) {
        this.requests.reject(id, error);
        return;
      }
    }
    if (this.refreshing && (code === "unauthorized" || code === "forbidden")) {
      this.emit("error", new AuthError(`token refresh refused: ${text}`));
      this.drop(CloseCode.Dead, "token refresh refused");
      return;
    }
    if (code === "unauthorized" && this.state === ClientState.Connected && this.getToken !== undefined && !this.refreshing) {
      // The token expired before a refresh: the gateway grants a grace period to send one.
      void this.refresh();
    }
    this.emit("error", error);
  }

  private authenticated(userId: string): void {
    this.connectTimer.clear();
    this.userId = userId;
    this.attempt = 0;
    this.backoff.reset();
    this.schedulePing();
    this.scheduleRefresh();
    // Resubscribe and send what waited before announcing `connected`: a listener that
    // subscribes or publishes on that event then sends its frame once, after these.
    for (const sub of this.subs.values()) this.sendSubscribe(sub);
    this.flush();
    this.machine.to(ClientState.Connected);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private schedulePing(): void {
    this.pingTimer.set(this.settings.pingIntervalMs, () => {
      if (this.state !== ClientState.Connected) return;
      if (!this.pongTimer.armed) {
        this.send({ type: "ping" });
        this.pongTimer.set(this.settings.pongTimeoutMs, () => this.drop(CloseCode.Dead, "no answer to ping"));
      }
      this.schedulePing();
    });
  }

  private scheduleRefresh(): void {
    this.refreshTimer.clear();
    if (this.getToken === undefined || this.token === undefined) return;
    const exp = expiresAt(this.token);
    if (exp === undefined) return;
    const delay = refreshDelay(exp, this.clock.now(), this.settings.refreshMarginMs);
    this.refreshTimer.set(delay, () => void this.refresh());
  }

  private async refresh(): Promise<void> {
    if (this.state !== ClientState.Connected || this.refreshing) return;
    this.refreshing = true;
    let token: string;
    try {
      token = await this.fetchToken();
    } catch (error) {
      this.refreshing = false;
      if (this.state !== ClientState.Connected) return;
      this.emit("error", error instanceof HeraldError ? error : new AuthError("getToken failed", error));
      this.drop(CloseCode.Dead, "token refresh failed");
      return;
    }
    if (this.state !== ClientState.Connected) {
      this.refreshing = false;
      return;
    }
    this.token = token;
    this.refreshTimer.set(this.settings.requestTimeoutMs, () => this.drop(CloseCode.Dead, "no answer to the token refresh"));
    this.send({ type: "auth", token });
  }

  private refreshDone(): void {
    this.refreshing = false;
    this.scheduleRefresh();
    this.emit("refreshed", { expiresAt: this.token !== undefined ? expiresAt(this.token) : undefined });
  }

  /** The SDK gives up on the current socket itself (dead, or its token refused). */
  private drop(code: number, reason: string): void {
    if (this.socket === undefined) return;
    this.lost(code, reason);
  }

  /** The current socket is gone (closed by the peer, or dropped): clean up and decide what next. */
  private lost(code: number, reason: string): void {
    if (this.state === ClientState.Closed || this.state === ClientState.Disconnected) return;
    this.socket?.drop(code, reason, false);
    this.socket = undefined;
    this.stopTimers();
    this.refreshing = false;
    this.subscribing.clear();
    this.requests.connectionLost();
    for (const sub of this.subs.values()) sub.suspended();
    this.emit("disconnect", { code, reason });
    const next = decide(code, reason);
    if (next.kind === "stop") {
      this.shutdown(new ClosedError(next.message, next.code), false);
      return;
    }
    if (next.kind === "retry_fresh_token" && this.getToken === undefined) {
      this.shutdown(new AuthError(`the gateway refused the token (${code}${reason ? `: ${reason}` : ""}); pass getToken to renew it`), false);
      return;
    }
    this.machine.to(ClientState.Disconnected);
    this.scheduleReconnect(next.kind === "retry_limited");
  }

  private scheduleReconnect(limited: boolean): void {
    const delayMs = this.backoff.next(limited);
    this.attempt += 1;
    this.emit("reconnecting", { delayMs, attempt: this.attempt });
    this.reconnectTimer.set(delayMs, () => {
      if (this.state === ClientState.Disconnected) void this.open();
    });
  }

  private stopTimers(): void {
    this.connectTimer.clear();
    this.pingTimer.clear();
    this.pongTimer.clear();
    this.refreshTimer.clear();
  }

  private shutdown(error: HeraldError, graceful: boolean): void {
    if (this.state === ClientState.Closed) return;
    this.closeError = error;
    this.socket?.drop(1000, "", graceful);
    this.socket = undefined;
    this.stopTimers();
    this.reconnectTimer.clear();
    this.machine.to(ClientState.Closed);
    this.requests.failAll(error);
    this.subscribing.clear();
    const subs = [...this.subs.values()];
    this.subs.clear();
    for (const sub of subs) sub.end(graceful ? undefined : error);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(error);
    if (!graceful) this.emit("error", error);
  }
}
