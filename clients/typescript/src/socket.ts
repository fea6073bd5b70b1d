/** The thin glue between the protocol core and a WebSocket (the platform's, or one passed in). */

import type { ClientFrame } from "./frames.js";

/** The part of the WebSocket API the SDK uses: browsers, Node 22+ and the `ws` package have it. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // A method (not a property) so that implementations with narrower event types fit.
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: object) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface SocketHandlers {
  open(): void;
  text(data: string): void;
  closed(code: number, reason: string): void;
}

const OPEN = 1;

/** One socket's life. After {@link Socket.drop} it reports nothing more. */
export class Socket {
  private readonly ws: WebSocketLike;
  private live = true;

  constructor(Impl: WebSocketConstructor, url: string, private readonly handlers: SocketHandlers) {
    this.ws = new Impl(url);
    const on = this.ws.addEventListener.bind(this.ws);
    on("open", () => {
      if (this.live) this.handlers.open();
    });
    on("message", (event) => {
      const data = (event as { data?: unknown }).data;
      // Herald sends text frames only; anything else is ignored (ws hands text as a string too).
      if (this.live && typeof data === "string") this.handlers.text(data);
    });
    on("close", (event) => {
      if (!this.live) return;
      this.live = false;
      const e = event as { code?: unknown; reason?: unknown };
      this.handlers.closed(typeof e.code === "number" ? e.code : 1006, typeof e.reason === "string" ? e.reason : "");
    });
    // An error is always followed by close, which is where the SDK reacts.
    on("error", () => undefined);
  }

  /** Send one frame; false when the socket is not open. */
  send(frame: ClientFrame): boolean {
    if (!this.live || this.ws.readyState !== OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Stop listening and close. `graceful` waits for nothing either way: a socket found dead
   * is terminated at once where the implementation can (ws), instead of a closing handshake
   * that would never be answered.
   */
  drop(code: number, reason: string, graceful: boolean): void {
    this.live = false;
    const terminate = (this.ws as { terminate?: () => void }).terminate;
    try {
      if (!graceful && typeof terminate === "function") terminate.call(this.ws);
      else this.ws.close(code >= 4000 || code === 1000 ? code : 1000, reason);
    } catch {
      // Closing a socket that never opened may throw; it is gone either way.
    }
  }
}

export function platformWebSocket(): WebSocketConstructor | undefined {
  const g = globalThis as { WebSocket?: WebSocketConstructor };
  return g.WebSocket;
}
