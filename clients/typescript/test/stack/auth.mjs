// 4001 against the real gateway: a refused static token closes the client with AuthError;
// with getToken, the client reconnects with a fresh token after a refused one.
import { Client } from "../../dist/index.js";
import { env, mint, say, WebSocket } from "./lib.mjs";

const url = env("HERALD_TEST_WS");
const secret = env("HERALD_TEST_SECRET");
const forged = mint("not-the-secret-0123456789abcdef", { sub: "mallory" }, 600);

const fixed = new Client(url, { token: forged, WebSocket, minReconnectDelayMs: 100 });
const fixedCodes = [];
fixed.on("disconnect", ({ code }) => fixedCodes.push(code));
let staticError;
try {
  await fixed.connect();
} catch (error) {
  staticError = { name: error.name, code: error.code, message: error.message };
}

let calls = 0;
const renewing = new Client(url, {
  getToken: () => (++calls === 1 ? forged : mint(secret, { sub: "ts-renewed" }, 600)),
  WebSocket,
  minReconnectDelayMs: 100,
});
const renewingCodes = [];
renewing.on("disconnect", ({ code }) => renewingCodes.push(code));
await renewing.connect();
say("result", {
  staticError,
  staticState: fixed.state,
  fixedCodes,
  renewedUser: renewing.userId,
  renewingState: renewing.state,
  renewingCodes,
  calls,
});
renewing.close();
