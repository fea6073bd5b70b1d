/** Requests answered by `id` (publish, presence): timeouts, and what a lost connection does to them. */

import type { Clock, TimerHandle } from "./clock.js";
import { ConnectionLostError, HeraldError, RequestTimeoutError } from "./errors.js";
import type { ClientFrame } from "./frames.js";

interface Pending {
  frame: ClientFrame & { id: number };
  /** Written to a socket that has not closed since. */
  sent: boolean;
  /** Safe to send again on a new connection (a query); a publish is not. */
  repeatable: boolean;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: TimerHandle;
}

export class Requests {
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly clock: Clock) {}

  /** Track `frame` until answered or `timeoutMs` passes. */
  add<T>(frame: ClientFrame & { id: number }, timeoutMs: number, repeatable: boolean, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(frame.id);
        reject(new RequestTimeoutError(`${what}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(frame.id, { frame, sent: false, repeatable, resolve: resolve as (v: unknown) => void, reject, timer });
    });
  }

  /** The frames not yet written to the current socket, marked as written. */
  unsent(): ClientFrame[] {
    const out: ClientFrame[] = [];
    for (const p of this.pending.values()) {
      if (!p.sent) {
        p.sent = true;
        out.push(p.frame);
      }
    }
    return out;
  }

  /** Mark one frame as not written after all (the socket was not open). */
  unsend(id: number): void {
    const p = this.pending.get(id);
    if (p !== undefined) p.sent = false;
  }

  has(id: unknown): boolean {
    return typeof id === "number" && this.pending.has(id);
  }

  resolve(id: unknown, value: unknown): void {
    const p = this.take(id);
    p?.resolve(value);
  }

  reject(id: unknown, error: HeraldError): void {
    const p = this.take(id);
    p?.reject(error);
  }

  /** The socket closed: a written publish may or may not have been stored, so it fails; a query is resent. */
  connectionLost(): void {
    for (const [id, p] of [...this.pending]) {
      if (!p.sent) continue;
      if (p.repeatable) p.sent = false;
      else {
        this.take(id);
        p.reject(new ConnectionLostError(`the connection closed before the answer to ${p.frame.type} ${id}`));
      }
    }
  }

  /** Fail everything (the client is closed). */
  failAll(error: Error): void {
    for (const id of [...this.pending.keys()]) this.take(id)?.reject(error);
  }

  private take(id: unknown): Pending | undefined {
    if (typeof id !== "number") return undefined;
    const p = this.pending.get(id);
    if (p === undefined) return undefined;
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    return p;
  }
}
