// Close codes against a tiny WebSocket server of the test's own (the gateway has nothing that
// sends 4003 yet): the first connection is closed with 1001 (reconnect), the second with
// 4003 (disconnected by an operator: stay down). Counts the connections the client made.
import { WebSocketServer } from "ws";

import { Client } from "../../dist/index.js";
import { say, sleep, until, WebSocket } from "./lib.mjs";

const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
await new Promise((resolve) => server.on("listening", resolve));
let connections = 0;
server.on("connection", (socket) => {
  const n = ++connections;
  socket.on("message", (raw) => {
    const frame = JSON.parse(String(raw));
    if (frame.type === "auth") {
      socket.send(JSON.stringify({ type: "auth_success", userId: "u1" }));
      setTimeout(() => socket.close(n === 1 ? 1001 : 4003, n === 1 ? "going away" : "operator"), 100);
    }
  });
});

const client = new Client(`ws://127.0.0.1:${server.address().port}/ws`, {
  token: "static-token",
  WebSocket,
  minReconnectDelayMs: 100,
});
const codes = [];
client.on("disconnect", ({ code }) => codes.push(code));
await client.connect();
await until(() => client.state === "closed", 10_000, "the client to close");
await sleep(2500); // time for any (wrong) reconnect
let connectRejected = false;
await client.connect().catch(() => (connectRejected = true));
say("result", {
  connections,
  codes,
  state: client.state,
  closeError: { name: client.closeError?.name, code: client.closeError?.code },
  connectRejected,
});
server.close();
