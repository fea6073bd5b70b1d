// Compiled, never run: the documented uses type-check under --strict (the ws package fits).
import WebSocket from "ws";
import { Client, type Message, type Subscription } from "../../src/index.js";

async function usage(): Promise<void> {
  const c = new Client("ws://127.0.0.1:8080/ws", { token: "t", WebSocket });
  const d = new Client("ws://127.0.0.1:8080/ws", { getToken: async () => "t" }, WebSocket);
  await c.connect();
  const sub: Subscription = c.subscribe("chat.*", (m: Message) => console.log(m.topic, m.data, m.offset, m.epoch));
  sub.on("gap", ({ position }) => console.log(position?.offset));
  sub.on("state", ({ from, to }) => console.log(from, to));
  const offset: number = await c.publish("chat.x", { text: "hi" });
  const { count, users }: { count: number; users?: string[] } = await d.presence("room.1");
  console.log(offset, count, users, c.state === "connected");
  c.close();
}
void usage;
