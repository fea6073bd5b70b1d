// Publishing from the socket: each publish resolves with the offset its message carries;
// error frames with the publish's id reject it (the messages namespace, a topic not granted).
import { Client } from "../../dist/index.js";
import { env, mint, say, until, WebSocket } from "./lib.mjs";

const prefix = env("TOPIC_PREFIX");
const token = mint(env("HERALD_TEST_SECRET"), { sub: "ts-writer", topics: [`${prefix}.**`], publish: [`${prefix}.**`] }, 600);
const client = new Client(env("HERALD_TEST_WS"), { token, WebSocket });
await client.connect();
const got = [];
const sub = client.subscribe(`${prefix}.chat`, (m) => got.push(m));
await sub.ready();
const offsets = [];
for (let i = 0; i < 3; i++) offsets.push(await client.publish(`${prefix}.chat`, { text: `hello ${i}` }));
await until(() => got.length >= 3, 10_000, "the published messages");
const failure = async (topic) => {
  try {
    await client.publish(topic, { text: "nope" });
    return "resolved";
  } catch (error) {
    return { name: error.name, code: error.code };
  }
};
say("result", {
  offsets,
  echoed: got.map((m) => m.offset),
  texts: got.map((m) => m.data.text),
  publisher: got[0].publisher,
  reserved: await failure("messages.user.ts-writer"),
  ungranted: await failure("elsewhere.topic"),
});
client.close();
