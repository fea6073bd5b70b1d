/** Herald's client SDK: `new Client(url, { token } | { getToken })`, then connect, subscribe, publish, close. */

export { Client } from "./client.js";
export type { ClientEvents, ClientOptions, ClientSettings, TokenSource } from "./client.js";
export { AuthError, ClosedError, ConnectionLostError, HeraldError, RequestTimeoutError, ServerError } from "./errors.js";
export type { Message, Position, Presence } from "./frames.js";
export { CloseCode } from "./policy.js";
export type { WebSocketConstructor, WebSocketLike } from "./socket.js";
export { ClientState, IllegalTransitionError, SubscriptionState } from "./state.js";
export type { StateChange } from "./state.js";
export { Subscription } from "./subscription.js";
export type { MessageHandler, PresenceEvent, SubscribeOptions, SubscriptionEvents } from "./subscription.js";
