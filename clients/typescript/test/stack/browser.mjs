// examples/chat.html in a real Chromium (driven by playwright-core, no browser download):
// the page loads dist/herald.min.js, connects to the real gateway, shows messages published
// over REST, and publishes one itself through the SDK. Saves a screenshot.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { env, mint, restPublish, say } from "./lib.mjs";

const prefix = env("TOPIC_PREFIX");
const secret = env("HERALD_TEST_SECRET");
const topic = `${prefix}.lobby`;
const token = mint(secret, { sub: "browser-user", topics: [`${prefix}.**`], publish: [`${prefix}.**`] }, 600);
const publisher = mint(secret, { sub: "ts-publisher", roles: ["publisher"] }, 600);
const artifacts = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "test-artifacts");
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
  const query = new URLSearchParams({ url: env("HERALD_TEST_WS"), token, topic, connect: "1" });
  await page.goto(`${env("PAGE_BASE")}/examples/chat.html?${query}`);
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });
  await page.waitForSelector('#messages[data-subscription="subscribed"]', { timeout: 15_000 });
  const sdk = await page.evaluate(() => typeof Herald.Client === "function" && Object.keys(Herald).sort());

  for (let i = 1; i <= 3; i++) await restPublish(env("HERALD_TEST_API"), publisher, topic, { text: `over REST ${i}` });
  await page.waitForFunction(() => document.querySelectorAll("#messages li.message").length >= 3, null, { timeout: 15_000 });

  await page.fill("#text", "hello from Chromium");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll("#messages li.message").length >= 4, null, { timeout: 15_000 });
  await page.waitForFunction(() => /stored at offset \d+/.test(document.querySelector("#sent").textContent), null, {
    timeout: 15_000,
  });
  const items = await page.$$eval("#messages li.message", (lis) =>
    lis.map((li) => ({ meta: li.querySelector(".meta").textContent, text: li.lastChild.textContent })),
  );
  const screenshot = join(artifacts, "chat.png");
  await page.screenshot({ path: screenshot, fullPage: true });
  say("result", {
    sdk,
    items,
    sent: await page.textContent("#sent"),
    status: await page.textContent("#status"),
    userAgent: await page.evaluate(() => navigator.userAgent),
    pageErrors,
    screenshot,
  });
} finally {
  await browser.close();
}
