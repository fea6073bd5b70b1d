/** Errors the SDK rejects with or emits. `code` is a gateway error code or one of the SDK's own. */

export class HeraldError extends Error {
  override name = "HeraldError";
  constructor(
    message: string,
    /** `bad_request`, `unauthorized`, `forbidden`, `invalid_topic`, `rate_limited`,
     * `too_large`, `internal` from the gateway, or `timeout`, `connection_lost`, `closed`,
     * `disconnected`, `already_subscribed` from the SDK. */
    readonly code: string,
  ) {
    super(message);
  }
}

/** An `error` frame the gateway sent in answer to one of this client's frames. */
export class ServerError extends HeraldError {
  override name = "ServerError";
}

/** The gateway refused the token (static token refused, or `getToken` failed). */
export class AuthError extends HeraldError {
  override name = "AuthError";
  constructor(message: string, readonly cause?: unknown) {
    super(message, "unauthorized");
  }
}

/** No answer to a request (publish, subscribe, presence) within its timeout. */
export class RequestTimeoutError extends HeraldError {
  override name = "RequestTimeoutError";
  constructor(message: string) {
    super(message, "timeout");
  }
}

/** The socket closed before the answer came; for a publish, whether it was stored is unknown. */
export class ConnectionLostError extends HeraldError {
  override name = "ConnectionLostError";
  constructor(message: string) {
    super(message, "connection_lost");
  }
}

/** The client is closed: by the app, or for good by the gateway (see `code`). */
export class ClosedError extends HeraldError {
  override name = "ClosedError";
  constructor(message: string, code = "closed") {
    super(message, code);
  }
}
