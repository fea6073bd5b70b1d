// The console's shell: sign-in, the hash router (#/overview, #/topics, #/topic/<name>,
// #/users/<id>) and the navigation. Each page is a module with mount(root, params) that
// returns a function undoing what it started (timers, sockets).
import { ApiError, call, claimsOf, session } from "./api.js";
import { announce, fill, h } from "./dom.js";
import * as overview from "./overview.js";
import * as topic from "./topic.js";
import * as topics from "./topics.js";
import * as users from "./users.js";

const PAGES = { overview, topics, topic, users };
const $ = (id) => document.getElementById(id);
let unmount = () => {};

/** Why a token cannot sign in, in words an operator can act on; "" when it can. */
export async function refusal(token) {
  try {
    await call("/api/nodes", { token });
    return "";
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) return `This token was refused: ${error.message}. Paste a fresh one.`;
    if (error.status === 403)
      return "This token is valid but has no admin role. The console needs a token with the admin role (herald token SUB --role admin).";
    return `The api could not check the token: ${error.message}`;
  }
}

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] ? name : "overview";
  return { page, param: rest.length ? decodeURIComponent(rest.join("/")) : "" };
}

function showSignin(message = "") {
  unmount();
  unmount = () => {};
  fill($("page"));
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("token").focus();
}

function render() {
  if (!session.token) {
    showSignin();
    return;
  }
  const { page, param } = route();
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = `signed in as ${claimsOf(session.token).sub ?? "?"}`;
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.dataset.page === page || (page === "topic" && link.dataset.page === "topics");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  unmount();
  const root = fill($("page"));
  unmount = PAGES[page].mount(root, param, { expired: () => signOut("Your token was refused; sign in again.") }) ?? (() => {});
  document.title = `${root.querySelector("h1")?.textContent ?? "Herald"} · Herald console`;
  root.querySelector("h1")?.setAttribute("tabindex", "-1");
  if (document.activeElement === document.body || document.activeElement?.closest("nav")) root.querySelector("h1")?.focus();
}

function signOut(message = "") {
  session.token = null;
  showSignin(message);
  announce("Signed out");
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  const button = event.submitter ?? $("signin-form").querySelector("button");
  button.disabled = true;
  try {
    const why = await refusal(token);
    if (why) {
      $("signin-error").textContent = why;
      $("token").setAttribute("aria-invalid", "true");
      return;
    }
    $("token").removeAttribute("aria-invalid");
    $("token").value = "";
    session.token = token;
    announce("Signed in");
    if (!location.hash) location.hash = "#/overview";
    render();
  } finally {
    button.disabled = false;
  }
}

function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", render);
  if (typeof Herald === "undefined") {
    fill($("page"), h("p", { class: "error", role: "alert" }, "The SDK bundle (herald.min.js) did not load."));
  }
  render();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
