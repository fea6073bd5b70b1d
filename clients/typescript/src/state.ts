/** Life cycles of a client and of a subscription, with the steps each may take. */

/** Where a {@link Client} is in its life. */
export const ClientState = {
  /** No socket: not connected yet, or waiting to reconnect. */
  Disconnected: "disconnected",
  /** A socket is opening or authenticating. */
  Connecting: "connecting",
  /** Authenticated: frames flow. */
  Connected: "connected",
  /** Finished for good: closed by the app, or a close code that forbids reconnecting. */
  Closed: "closed",
} as const;
export type ClientState = (typeof ClientState)[keyof typeof ClientState];

/** Where a {@link Subscription} is in its life. */
export const SubscriptionState = {
  /** Not held by the gateway: not sent yet, or ended (by the app, the gateway or an error). */
  Unsubscribed: "unsubscribed",
  /** Sent, waiting for `subscribed` (also while the client reconnects). */
  Subscribing: "subscribing",
  /** The gateway holds it; messages flow. */
  Subscribed: "subscribed",
} as const;
export type SubscriptionState = (typeof SubscriptionState)[keyof typeof SubscriptionState];

export const CLIENT_TRANSITIONS: Readonly<Record<ClientState, readonly ClientState[]>> = {
  disconnected: ["connecting", "closed"],
  connecting: ["connected", "disconnected", "closed"],
  connected: ["disconnected", "closed"],
  closed: [],
};

export const SUBSCRIPTION_TRANSITIONS: Readonly<Record<SubscriptionState, readonly SubscriptionState[]>> = {
  unsubscribed: ["subscribing"],
  subscribing: ["subscribed", "unsubscribed"],
  subscribed: ["subscribing", "unsubscribed"],
};

/** A state change that the life cycle does not allow: a bug, never silently ignored. */
export class IllegalTransitionError extends Error {
  override name = "IllegalTransitionError";
}

export interface StateChange<S extends string> {
  from: S;
  to: S;
}

/** One current state, changed only along the given table. */
export class StateMachine<S extends string> {
  private current: S;

  constructor(
    initial: S,
    private readonly table: Readonly<Record<S, readonly S[]>>,
    private readonly changed: (change: StateChange<S>) => void,
  ) {
    this.current = initial;
  }

  get state(): S {
    return this.current;
  }

  can(next: S): boolean {
    return this.table[this.current].includes(next);
  }

  /** Move to `next`; throws {@link IllegalTransitionError} if the table forbids it. */
  to(next: S): void {
    const from = this.current;
    if (!this.can(next)) throw new IllegalTransitionError(`${from} -> ${next}`);
    this.current = next;
    this.changed({ from, to: next });
  }
}
