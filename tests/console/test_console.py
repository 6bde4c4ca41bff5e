"""The console at /ui, end to end: a real gateway, the fake upstream, headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import Console, labelled
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer

KEY = "sk-console-test"


@pytest.fixture
def gw(make_gateway: Callable[..., GatewayServer], tmp_path: object) -> GatewayServer:
    return make_gateway({"GATEWAY_API_KEYS": KEY})


def sign_in(page: Page, gw: GatewayServer, key: str = KEY) -> None:
    page.goto(gw.url + "/ui/")
    page.get_by_label("Gateway key").fill(key)
    page.get_by_role("button", name="Open the console").click()


def test_page_and_files_load_without_a_key_but_the_api_needs_one(gw: GatewayServer) -> None:
    with httpx2.Client(base_url=gw.url) as client:
        page = client.get("/ui", follow_redirects=True)
        assert page.status_code == 200
        assert "<title>agent-gateway console</title>" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for name in ("app.js", "api.js", "style.css", "vendor/htm-preact.js"):
            assert client.get(f"/ui/{name}").status_code == 200, name
        assert client.get("/v1/agents").status_code == 401
        assert client.get("/v1/me").status_code == 401


def test_a_wrong_key_is_refused_in_words(console: Console, gw: GatewayServer) -> None:
    page = console.page
    sign_in(page, gw, key="sk-wrong")
    expect(page.get_by_role("alert")).to_have_text(re.compile("invalid gateway key"))
    expect(page.get_by_label("Gateway key")).to_be_visible()
    # The refused call is the browser's only complaint; the key is not kept.
    assert all("401" in e for e in console.errors), console.errors
    assert page.evaluate("() => sessionStorage.length") == 0


def test_create_edit_chat_and_read_history(
    console: Console, gw: GatewayServer, upstream: FakeUpstream
) -> None:
    page = console.page
    sign_in(page, gw)
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    # Admin tabs stay hidden for a key that is not the admin's.
    expect(page.get_by_role("link", name="Keys")).to_have_count(0)
    console.shot("agents")

    # Create, with the model picked from /v1/models (context windows shown).
    page.get_by_role("button", name="New agent").click()
    page.get_by_label("Name").fill("ada")
    options = page.locator("#agent-model option").all_inner_texts()
    assert any(o.startswith("openai/gpt-4o-mini") for o in options), options
    page.get_by_label("Model").select_option("openai/gpt-4o-mini")
    page.get_by_label("Description").fill("remembers things")
    page.get_by_label("System prompt").fill("You are Ada.")
    page.get_by_label("Value of “human”").fill("Name: Grace")
    page.get_by_role("button", name="Create agent").click()
    expect(page.get_by_role("heading", name="ada", exact=True)).to_be_visible()
    expect(page.get_by_label("Model")).to_have_value("openai/gpt-4o-mini")
    assert labelled(page) == []

    # Edit a memory block; its limit is shown beside it.
    expect(page.get_by_text("11 / 2,000 characters")).to_be_visible()
    page.get_by_label("Value of “persona”").fill("Curious and kind.")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    with httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        blocks = {
            b["label"]: b["value"] for b in client.get("/v1/agents/ada").json()["memory_blocks"]
        }
    assert blocks == {"human": "Name: Grace", "persona": "Curious and kind."}
    console.shot("agent")

    # Chat: a tool step, then a reply streamed slowly enough to be seen arriving.
    upstream.script(
        Reply.completion(
            tool_calls=[
                {
                    "name": "core_memory_append",
                    "arguments": {"label": "human", "content": "Likes tea."},
                }
            ]
        ),
        _slow_reply(["Noted: ", "you ", "like ", "tea."]),
    )
    page.get_by_role("link", name="Chat with ada").click()
    page.get_by_role("button", name="New conversation").click()
    page.get_by_label("Message").fill("I like tea")
    page.keyboard.press("Enter")
    streaming = page.locator("[data-role=streaming]")
    expect(streaming).to_be_visible()
    expect(page.locator("[data-role=tool-call]")).to_contain_text("core_memory_append")
    expect(streaming).to_have_count(0, timeout=20_000)
    assistant = page.locator("[data-role=assistant]").last
    expect(assistant).to_contain_text("Noted: you like tea.")
    expect(page.locator("[data-role=tool]")).to_contain_text("core_memory_append")
    console.shot("chat")

    # The history view shows the conversation, tool call and result included.
    conversation = page.locator("#chat-conversation").input_value()
    page.goto(f"{gw.url}/ui/#/agents/ada")
    page.get_by_role("link", name=conversation).click()
    expect(page.get_by_role("heading", name=f"History of {conversation}")).to_be_visible()
    history = page.locator(".messages").last
    expect(history.locator("[data-role=user]")).to_contain_text("I like tea")
    expect(history.locator("[data-role=tool-call]")).to_contain_text("core_memory_append")
    expect(history.locator("[data-role=tool]")).to_have_count(1)
    expect(history.locator("[data-role=assistant]").last).to_contain_text("you like tea")
    # The memory edit the tool made shows in the settings form.
    expect(page.get_by_label("Value of “human”")).to_have_value(re.compile("Likes tea"))
    assert console.errors == []


def test_models_view_and_delete_with_confirmation(console: Console, gw: GatewayServer) -> None:
    page = console.page
    with httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        assert (
            client.post("/v1/agents", json={"name": "bob", "model": "openai/gpt-4o"}).status_code
            == 201
        )
    sign_in(page, gw)
    page.get_by_role("link", name="Models").click()
    # The role selector cannot take a name with "/": find the rows by their text.
    row = page.locator("tbody tr", has_text="openai/gpt-4o-mini").first
    expect(row).to_contain_text("live (the provider's list)")
    expect(page.locator("tbody tr", has_text="agent/bob")).to_contain_text("agent")
    console.shot("models")

    page.get_by_role("link", name="Agents").click()
    page.get_by_role("link", name="bob").click()
    page.get_by_role("button", name="Delete agent").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("cannot be undone")
    page.get_by_role("button", name="Keep it").click()
    expect(page.get_by_role("heading", name="bob", exact=True)).to_be_visible()
    page.get_by_role("button", name="Delete agent").click()
    page.get_by_role("button", name="Yes, delete bob").click()
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    expect(page.get_by_text("No agents yet.")).to_be_visible()
    assert console.errors == []


def test_phone_sized_and_keyboard_only(browser: object, gw: GatewayServer) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(gw.url + "/ui/")
        # Keyboard only: focus the key field, type, submit with Enter.
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "key"
        page.keyboard.type(KEY)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Agents")).to_be_visible()
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
        page.get_by_role("button", name="New agent").click()
        assert labelled(page) == []
    finally:
        context.close()


def _slow_reply(pieces: list[str]) -> Reply:
    def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [choice],
        }

    events: list[object] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in pieces]
    events.append(chunk({}, "stop"))
    return Reply.sse(events, delay=0.3)  # type: ignore[arg-type]


ADMIN = "sk-console-admin"


def test_admin_creates_and_revokes_keys_and_reads_usage_as_a_chart(
    console: Console, make_gateway: Callable[..., GatewayServer], upstream: FakeUpstream
) -> None:
    import openai

    gw = make_gateway({"GATEWAY_API_KEYS": KEY, "GATEWAY_ADMIN_KEY": ADMIN})
    page = console.page
    sign_in(page, gw, key=ADMIN)
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Name").fill("team-a")
    page.get_by_label("Models").fill("openai/*")
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_label("Budget (USD)").fill("5")
    page.get_by_label("Budget period").select_option("daily")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("[data-secret]")
    expect(secret).to_have_text(re.compile(r"^sk-gw-"))
    row = page.locator("tbody tr", has_text="team-a")
    expect(row).to_contain_text("openai/*")
    expect(row).to_contain_text("100 rpm")
    expect(row).to_contain_text("active")
    console.shot("keys")

    # The new key works until it is revoked; its use shows in the usage chart.
    with openai.OpenAI(base_url=gw.base_url, api_key=secret.inner_text(), max_retries=0) as sdk:
        for _ in range(2):
            sdk.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    page.get_by_role("link", name="Usage").click()
    page.get_by_label("Group by").select_option("key")
    expect(page.locator("tbody tr", has_text="team-a")).to_be_visible()
    expect(page.locator("figure.chart svg rect")).not_to_have_count(0)
    console.shot("usage")

    page.get_by_role("link", name="Keys").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke team-a").click()
    expect(page.locator("tbody tr", has_text="team-a")).to_contain_text("revoked")
    assert console.errors == []


GROUPS = """
[[providers]]
name = "openai"
type = "openai"
max_attempts = 1

[models.fast]
targets = ["openai/gpt-4o-mini", "openai/gpt-4o"]
failures = 1
cooldown_s = 120
"""


def test_models_view_shows_groups_and_targets_cooling_down(
    console: Console,
    make_gateway: Callable[..., GatewayServer],
    upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    import openai

    config = tmp_path / "groups.toml"
    config.write_text(GROUPS)
    gw = make_gateway({"GATEWAY_API_KEYS": KEY}, config=config)
    upstream.script(Reply.error(503))  # the first target fails once: it rests
    with openai.OpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0) as sdk:
        sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    page = console.page
    sign_in(page, gw)
    page.get_by_role("link", name="Models").click()
    group = page.locator("tbody tr", has_text="fallback")
    expect(group).to_contain_text("fast")
    targets = group.locator("ol.targets li")
    expect(targets).to_have_count(2)
    expect(targets.first).to_contain_text("cooling down")
    expect(targets.last).not_to_contain_text("cooling down")
    assert console.errors == []
