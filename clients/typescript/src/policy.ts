/** What a close code means for reconnecting (docs/protocol.md, "Close codes"). */

export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  Abnormal: 1006,
  TooBig: 1009,
  InternalError: 1011,
  AuthFailed: 4001,
  Operator: 4003,
  PolicyLimit: 4008,
  SlowConsumer: 4009,
  /** Used by the SDK itself for a socket it dropped (no pong, no auth answer in time). */
  Dead: 4000,
} as const;

export type Reconnect =
  /** Reconnect after the usual backoff. */
  | { kind: "retry" }
  /** Reconnect after a longer backoff (4008). */
  | { kind: "retry_limited" }
  /** Reconnect only with a fresh token from `getToken`; with a static token, stop. */
  | { kind: "retry_fresh_token" }
  /** Stay closed. */
  | { kind: "stop"; code: string; message: string };

/** The decision for a socket the gateway (or the network) closed with `code`. */
export function decide(code: number, reason: string): Reconnect {
  switch (code) {
    case CloseCode.Operator:
      return { kind: "stop", code: "disconnected", message: `disconnected by an operator (4003${reason ? `: ${reason}` : ""})` };
    case CloseCode.AuthFailed:
      return { kind: "retry_fresh_token" };
    case CloseCode.PolicyLimit:
      return { kind: "retry_limited" };
    default:
      // 1001, 1006, 1011, 4009 and everything else: the socket is gone, the session is not.
      return { kind: "retry" };
  }
}
