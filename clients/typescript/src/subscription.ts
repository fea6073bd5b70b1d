/** One subscription: its state, its handler, and what it has handed over (for resume). */

import { Emitter, report } from "./emitter.js";
import type { HeraldError } from "./errors.js";
import type { Message, Position } from "./frames.js";
import { ResumeTracker } from "./resume.js";
import { StateMachine, SUBSCRIPTION_TRANSITIONS, SubscriptionState, type StateChange } from "./state.js";

export interface SubscribeOptions {
  /** Also receive `join`/`leave` for this exact topic (the gateway must support presence). */
  presence?: boolean;
}

export interface PresenceEvent {
  topic: string;
  userId: string;
}

export interface SubscriptionEvents {
  state: StateChange<SubscriptionState>;
  /** A resubscribe could not replay everything missed (`recovered: false`): reload from REST. */
  gap: { position: Position | undefined };
  join: PresenceEvent;
  leave: PresenceEvent;
  /** The subscription ended because of this error (refused, or ended by the gateway). */
  error: HeraldError;
}

export type MessageHandler = (message: Message) => void;

export class Subscription extends Emitter<SubscriptionEvents> {
  readonly pattern: string;
  readonly presence: boolean;
  /** False after a resubscribe that could not replay everything missed; true again after one that could. */
  recovered = true;
  /** Why it ended, when the gateway ended it or refused it. */
  error: HeraldError | undefined;

  private readonly machine: StateMachine<SubscriptionState>;
  private readonly tracker = new ResumeTracker();
  /** The client's highest position when this was first subscribed (see {@link position}). */
  private floor: Position | undefined;
  private wasSubscribed = false;
  private wasSent = false;
  private ended = false;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  /** @internal Made by {@link Client.subscribe}. */
  constructor(
    pattern: string,
    private readonly handler: MessageHandler,
    options: SubscribeOptions,
    private readonly leave: (sub: Subscription) => void,
  ) {
    super();
    this.pattern = pattern;
    this.presence = options.presence === true;
    this.machine = new StateMachine<SubscriptionState>(SubscriptionState.Unsubscribed, SUBSCRIPTION_TRANSITIONS, (c) =>
      this.emit("state", c),
    );
  }

  get state(): SubscriptionState {
    return this.machine.state;
  }

  /**
   * Where a resubscribe resumes: the last message handed over or, before any, the client's
   * newest position when this subscription was first sent (everything the gateway stored
   * after that is on or after it, since offsets come from one stream).
   */
  get position(): Position | undefined {
    return this.tracker.position ?? this.floor;
  }

  /** Resolves once the gateway holds the subscription; rejects if it ends first. */
  ready(): Promise<void> {
    if (this.state === SubscriptionState.Subscribed) return Promise.resolve();
    if (this.ended) return Promise.reject(this.error ?? new Error(`subscription to ${this.pattern} ended`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Stop receiving; the subscription cannot be used again. */
  unsubscribe(): void {
    this.leave(this);
  }

  /**
   * @internal A subscribe frame is being sent; `high` is the client's newest position.
   * Returns the `since` to send: none the first time (live from now on), then {@link position}.
   */
  sending(high: Position | undefined): Position | undefined {
    if (this.state !== SubscriptionState.Subscribing) this.machine.to(SubscriptionState.Subscribing);
    if (this.wasSent) return this.position;
    this.wasSent = true;
    this.floor = high;
    return undefined;
  }

  /** @internal The connection dropped: it will be sent again once reconnected. */
  suspended(): void {
    if (this.state === SubscriptionState.Subscribed) this.machine.to(SubscriptionState.Subscribing);
  }

  /** @internal `subscribed` arrived; `resumed` says whether `since` was sent. */
  subscribed(recovered: boolean | undefined, resumed: boolean): void {
    const again = this.wasSubscribed;
    this.wasSubscribed = true;
    this.machine.to(SubscriptionState.Subscribed);
    if (recovered === false || (again && !resumed)) {
      // Without `since` after a reconnect, whatever came in between is unknown.
      this.recovered = false;
      this.emit("gap", { position: this.position });
    } else if (recovered === true) {
      this.recovered = true;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
  }

  /** @internal Hand a message to the app unless this subscription already did. */
  deliver(message: Message): void {
    if (!this.tracker.accept(message.topic, message.offset, message.epoch)) return;
    try {
      this.handler(message);
    } catch (error) {
      report(error);
    }
  }

  /** @internal A `join` or `leave` for this topic. */
  presenceEvent(kind: "join" | "leave", userId: string): void {
    this.emit(kind, { topic: this.pattern, userId });
  }

  /** @internal It is over: unsubscribed by the app (no error), or refused/ended by the gateway. */
  end(error: HeraldError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    if (this.state !== SubscriptionState.Unsubscribed) this.machine.to(SubscriptionState.Unsubscribed);
    if (error !== undefined) this.emit("error", error);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error ?? new Error(`unsubscribed from ${this.pattern}`));
  }
}
