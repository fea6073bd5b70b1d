"""The console in a real Chromium against real processes: sign-in, every page, the live tail,
presence, publishing and disconnecting, with a screenshot of each page in test-artifacts/console."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.console.browser import ARTIFACTS, launch
from tests.console.conftest import ADMIN, Ops, unique
from tests.console.test_operator_api import close_code
from tests.support.stack import client, token

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration

TIMEOUT = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture
def page(browser: Browser, ops: Ops) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    refused = "Failed to load resource: the server responded with a status of 40"
    pg.set_default_timeout(TIMEOUT)
    yield pg
    context.close()
    # CSP violations and script errors are reported on the console: there must be none (the
    # api's 401 and 403 answers to refused tokens are logged too, and expected).
    assert [p for p in problems if refused not in p] == []


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def every_control_is_labelled(page: Page) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, textarea, select')]
              .filter((el) => !el.hidden && el.offsetParent !== null && el.labels.length === 0)
              .map((el) => el.id || el.outerHTML)"""
    )
    assert unlabelled == []


def sign_in(page: Page, ops: Ops, tok: str = ADMIN) -> None:
    page.goto(ops.stack.api_url + "/console")
    page.fill("#token", tok)
    page.click("#signin-form button")


def test_a_non_admin_token_is_refused_with_a_clear_message(page: Page, ops: Ops) -> None:
    response = page.goto(ops.stack.api_url + "/console")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    assert f"connect-src 'self' ws://127.0.0.1:{ops.stack.gateways[0].port};" in csp
    every_control_is_labelled(page)
    page.fill("#token", token("not-an-operator", "publisher"))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the submit button, reached from the keyboard
    page.wait_for_selector("#signin-error:has-text('no admin role')")
    assert page.is_visible("#signin")
    assert not page.is_visible("#nav")
    assert page.evaluate("sessionStorage.length") == 0
    shot(page, "signin-refused")
    page.fill("#token", "not.a.token")
    page.click("#signin-form button")
    page.wait_for_selector("#signin-error:has-text('refused')")


def test_overview_lists_the_gateways_the_api_and_both_bridges(page: Page, ops: Ops) -> None:
    sign_in(page, ops)
    page.wait_for_selector("#nodes")
    page.wait_for_function(
        """() => {
          const rows = [...document.querySelectorAll('#nodes tbody tr')].map((r) => r.textContent);
          const count = (word) => rows.filter((t) => t.includes(word)).length;
          return count('gateway') === 2 && count('api') >= 1 && count('active') === 1 && count('standby') === 1;
        }"""
    )
    assert page.evaluate("sessionStorage.getItem('herald.console.token')") == ADMIN
    assert page.evaluate("localStorage.length + document.cookie.length") == 0  # the tab only
    assert page.text_content("#n-gateways") == "2"
    assert page.text_content("#n-bridges") == "2"
    assert "connected" in (page.text_content(".card:has(h2:has-text('Health'))") or "")
    assert page.get_attribute("#nav a[data-page=overview]", "aria-current") == "page"
    shot(page, "overview")
    # From the top of the page, Tab goes: skip link, the three pages, Sign out; Enter follows.
    page.evaluate("document.activeElement.blur()")
    focused = []
    for _ in range(5):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert focused == ["Skip to content", "Overview", "Topics", "Users", "Sign out"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Users')")
    assert page.evaluate("document.activeElement.tagName") == "H1"
    page.go_back()
    page.wait_for_selector("#nodes")
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 20, 24)"
    shot(page, "overview-dark")


def test_topics_page_finds_a_held_topic(page: Page, ops: Ops) -> None:
    prefix = unique("ct")
    with client(ops.stack.gateways[1].url, "topic-holder", topics=[f"{prefix}.**"]) as c:
        assert c.subscribe(f"{prefix}.orders")["type"] == "subscribed"
        assert c.subscribe(f"{prefix}.*")["type"] == "subscribed"
        sign_in(page, ops)
        page.click("#nav a[data-page=topics]")
        page.fill("#topic-search", prefix)
        page.wait_for_selector(f"#topics a:has-text('{prefix}.orders')")
        rows = page.eval_on_selector_all("#topics tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
        assert rows == [[f"{prefix}.*", "pattern", "1", "1", "—"], [f"{prefix}.orders", "topic", "1", "1", "—"]]
        every_control_is_labelled(page)
        shot(page, "topics")
        page.click(f"#topics a:has-text('{prefix}.orders')")
        page.wait_for_selector(f"h1:has-text('{prefix}.orders')")


def test_topic_page_tails_publishes_and_shows_presence(page: Page, ops: Ops) -> None:
    topic = unique("ct") + ".lobby"
    sign_in(page, ops)
    page.wait_for_selector("#nodes")
    page.evaluate(f"location.hash = '#/topic/{topic}'")
    page.wait_for_selector("#tail-state[data-state=connected]")
    page.wait_for_selector("#tail[data-subscription=subscribed]", state="attached")
    every_control_is_labelled(page)

    page.fill("#publish-data", '{"text": ')
    page.wait_for_selector("#publish-check:has-text('Not JSON')")
    assert page.is_disabled("#publish-send")
    assert page.get_attribute("#publish-data", "aria-invalid") == "true"
    page.fill("#publish-data", json.dumps({"text": "hello from the console", "n": 1}))
    page.click("#publish-send")
    page.wait_for_selector("#publish-result:has-text('Accepted as event')")
    # Tracing is on: the answer named its trace, and the link goes to the trace viewer
    # derived from OTEL_EXPORTER_OTLP_ENDPOINT (its host, Jaeger's port 16686).
    link = page.get_attribute("#publish-result a:has-text('See its trace')", "href") or ""
    match = re.fullmatch(r"http://127\.0\.0\.1:16686/trace/([0-9a-f]{32})", link)
    assert match is not None, link
    spans = ops.traces.wait_for(lambda got: any(s.trace_id == match.group(1) for s in got))
    assert any(s.name == "POST /api/publish" for s in spans if s.trace_id == match.group(1))
    page.wait_for_selector("#tail li:has-text('hello from the console')")

    watcher = unique("watcher-")
    with client(ops.stack.gateways[1].url, watcher, topics=[topic]) as c:
        assert c.subscribe(topic)["type"] == "subscribed"
        page.wait_for_selector(f"#presence li[data-user='{watcher}']")
        page.wait_for_selector(f"#presence-log li:has-text('joined: {watcher}')")
        page.click("#history-reload")  # the history was read before the publish
        page.wait_for_selector("#history li:has-text('hello from the console')")
        shot(page, "topic")
        page.emulate_media(color_scheme="dark")
        shot(page, "topic-dark")
    page.wait_for_selector(f"#presence li[data-user='{watcher}']", state="detached")
    page.wait_for_selector(f"#presence-log li:has-text('left: {watcher}')")


def test_users_page_lists_sockets_and_disconnects_them_with_4003(page: Page, ops: Ops) -> None:
    user = unique("target-")
    with client(ops.stack.gateways[0].url, user) as a, client(ops.stack.gateways[1].url, user) as b:
        sockets = [a, b]
        sign_in(page, ops)
        page.click("#nav a[data-page=users]")
        page.fill("#user-id", user)
        page.press("#user-id", "Enter")
        page.wait_for_selector("#connections caption:has-text('(2)')")
        every_control_is_labelled(page)
        shot(page, "users")
        page.click("#disconnect")
        page.wait_for_selector("#disconnect-result:has-text('Closed 2 socket(s)')")
        assert [close_code(s.ws) for s in sockets] == [4003, 4003]
        page.wait_for_selector("#connections caption:has-text('(0)')")
        shot(page, "users-disconnected")
    page.click("#signout")
    page.wait_for_selector("#signin-form")
    assert page.evaluate("sessionStorage.length") == 0
    assert not page.is_visible("#nav")
