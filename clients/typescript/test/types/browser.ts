// Compiled, never run: the browser's own WebSocket fits too.
import { Client } from "../../src/index.js";

export const c = new Client("ws://127.0.0.1:8080/ws", { token: "t", WebSocket });
