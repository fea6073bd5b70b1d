/** The JSON frames of Herald's WebSocket protocol (docs/protocol.md), and reading them safely. */

/** Where a subscription stands in a topic's history: resubscribe with it as `since`. */
export interface Position {
  offset: number;
  epoch: string;
}

/** A message as handed to a subscription's handler. */
export interface Message {
  topic: string;
  data: unknown;
  /** Increases per topic, not consecutive: never do arithmetic on it. */
  offset: number;
  /** Changes when that history was lost. */
  epoch: string;
  /** For the api's events: `message.sent`, `message.updated`, `message.deleted`. */
  event?: string;
  /** For messages published from a socket: the publisher's `sub`. */
  publisher?: string;
}

/** The answer to a presence query. */
export interface Presence {
  topic: string;
  /** How many users hold a subscription to the topic. */
  count: number;
  /** Who they are, sorted; absent when there are more than the gateway lists. */
  users?: string[];
}

export type ClientFrame =
  | { type: "auth"; token: string }
  | { type: "subscribe"; topic: string; id: number; since?: Position; presence?: boolean }
  | { type: "unsubscribe"; topic: string; id: number }
  | { type: "message"; topic: string; data: unknown; id: number }
  | { type: "presence"; topic: string; id: number }
  | { type: "ping" };

export type ServerFrame =
  | { type: "auth_success"; userId: string }
  | { type: "subscribed"; topic: string; id?: unknown; recovered?: boolean }
  | { type: "unsubscribed"; topic: string; id?: unknown }
  | ({ type: "message" } & Message)
  | { type: "published"; topic: string; offset: number; id?: unknown }
  | { type: "join" | "leave"; topic: string; userId: string }
  | { type: "presence"; topic: string; count: number; users?: string[]; id?: unknown }
  | { type: "error"; code: string; message: string; id?: unknown }
  | { type: "pong" };

type Raw = Record<string, unknown>;

const str = (v: unknown): v is string => typeof v === "string";
const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Decode one text frame from the gateway; undefined for anything that is not a frame
 * this SDK understands (unknown types and fields are ignored, as the protocol asks).
 */
export function parseServerFrame(text: string): ServerFrame | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
  const f = raw as Raw;
  switch (f.type) {
    case "auth_success":
      return str(f.userId) ? { type: "auth_success", userId: f.userId } : undefined;
    case "subscribed":
      if (!str(f.topic)) return undefined;
      return {
        type: "subscribed",
        topic: f.topic,
        id: f.id,
        ...(typeof f.recovered === "boolean" ? { recovered: f.recovered } : {}),
      };
    case "unsubscribed":
      return str(f.topic) ? { type: "unsubscribed", topic: f.topic, id: f.id } : undefined;
    case "message": {
      if (!str(f.topic) || !num(f.offset) || !str(f.epoch)) return undefined;
      const m: { type: "message" } & Message = {
        type: "message",
        topic: f.topic,
        data: f.data,
        offset: f.offset,
        epoch: f.epoch,
      };
      if (str(f.event)) m.event = f.event;
      if (str(f.publisher)) m.publisher = f.publisher;
      return m;
    }
    case "published":
      return str(f.topic) && num(f.offset) ? { type: "published", topic: f.topic, offset: f.offset, id: f.id } : undefined;
    case "join":
    case "leave":
      return str(f.topic) && str(f.userId) ? { type: f.type, topic: f.topic, userId: f.userId } : undefined;
    case "presence": {
      // Above the gateway's cap `users` is left out and only `count` is given.
      const users = Array.isArray(f.users) && f.users.every(str) ? f.users : undefined;
      if (!str(f.topic) || (f.users !== undefined && users === undefined)) return undefined;
      const count = num(f.count) ? f.count : users?.length;
      if (count === undefined) return undefined;
      return { type: "presence", topic: f.topic, count, ...(users !== undefined ? { users } : {}), id: f.id };
    }
    case "error":
      return str(f.code) ? { type: "error", code: f.code, message: str(f.message) ? f.message : f.code, id: f.id } : undefined;
    case "pong":
      return { type: "pong" };
    default:
      return undefined;
  }
}
