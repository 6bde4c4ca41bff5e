"""`/v1/agents` over real HTTP: the CRUD round trip, pagination, and every bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest

from tests.agents.conftest import create, history
from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayServer


def error_of(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def test_crud_round_trip(rest: httpx2.Client) -> None:
    made = create(
        rest,
        description="Knows tulips",
        system="Be kind.",
        max_tokens=200,
        memory_blocks=[{"label": "human", "value": "Ann", "limit": 50}],
    )
    assert made["id"].startswith("agent-") and made["tools"] == [
        "core_memory_append",
        "core_memory_replace",
        "conversation_search",
    ]
    assert rest.get(f"/v1/agents/{made['id']}").json() == made
    assert [a["name"] for a in rest.get("/v1/agents").json()["data"]] == ["ada"]

    patched = rest.patch(
        "/v1/agents/ada",
        json={
            "name": "ada2",
            "max_tokens": None,
            "tools": ["conversation_search"],
            "memory_blocks": [{"label": "persona", "value": "calm"}],
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["max_tokens"], body["tools"]) == (
        "ada2",
        None,
        ["conversation_search"],
    )
    assert body["memory_blocks"] == [{"label": "persona", "value": "calm", "limit": 5000}]
    assert body["system"] == "Be kind." and body["created_at"] == made["created_at"]

    deleted = rest.delete("/v1/agents/ada2")
    assert deleted.json() == {"id": made["id"], "object": "agent.deleted", "deleted": True}
    assert rest.get("/v1/agents/ada2").status_code == 404
    assert rest.get("/v1/agents").json()["data"] == []


def test_history_pages_with_cursors(rest: httpx2.Client, upstream: FakeUpstream) -> None:
    create(rest)
    for i in range(5):
        rest.post(
            "/v1/agents/ada/messages", json={"messages": [{"role": "user", "content": f"m{i}"}]}
        )
    everything = history(rest, "ada")
    assert len(everything) == 10
    newest = rest.get("/v1/agents/ada/messages", params={"limit": 4}).json()
    assert [m["id"] for m in newest["data"]] == [m["id"] for m in everything[-4:]]
    assert newest["has_more"] and newest["first_id"] == everything[-4]["id"]
    older = rest.get(
        "/v1/agents/ada/messages", params={"limit": 4, "before": newest["first_id"]}
    ).json()
    assert [m["id"] for m in older["data"]] == [m["id"] for m in everything[2:6]]
    forward = rest.get(
        "/v1/agents/ada/messages", params={"limit": 3, "after": everything[6]["id"]}
    ).json()
    assert [m["id"] for m in forward["data"]] == [m["id"] for m in everything[7:10]]
    assert forward["has_more"] is False


BAD_CREATE = [
    ({"name": "has space"}, "name", "invalid_value"),
    ({"name": "x" * 65}, "name", "invalid_value"),
    ({"name": 7}, "name", "invalid_value"),
    ({}, "name", "invalid_value"),
    (
        {"name": "ok", "memory_blocks": [{"label": "a b"}]},
        "memory_blocks[0].label",
        "invalid_value",
    ),
    (
        {"name": "ok", "memory_blocks": [{"label": "a", "value": "toolong", "limit": 3}]},
        "memory_blocks[0].value",
        "invalid_value",
    ),
    (
        {"name": "ok", "memory_blocks": [{"label": "a"}, {"label": "a"}]},
        "memory_blocks[1].label",
        "invalid_value",
    ),
    (
        {"name": "ok", "memory_blocks": [{"label": "a", "limit": 0}]},
        "memory_blocks[0].limit",
        "invalid_value",
    ),
    (
        {"name": "ok", "memory_blocks": [{"label": "a", "limit": "10"}]},
        "memory_blocks[0].limit",
        "invalid_value",
    ),
    ({"name": "ok", "memory_blocks": "human"}, "memory_blocks", "invalid_value"),
    ({"name": "ok", "tools": ["rm_rf"]}, "tools[0]", "invalid_value"),
    ({"name": "ok", "mcp_servers": ["nowhere"]}, "mcp_servers[0]", "invalid_value"),
    ({"name": "ok", "context_window_limit": 0}, "context_window_limit", "invalid_value"),
    ({"name": "ok", "max_tokens": -1}, "max_tokens", "invalid_value"),
    ({"name": "ok", "enable_reasoner": "yes"}, "enable_reasoner", "invalid_value"),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD_CREATE)
def test_bad_create_bodies_name_the_field(
    rest: httpx2.Client, body: dict[str, Any], param: str, code: str
) -> None:
    body.setdefault("model", "openai/gpt-4o-mini")
    error = error_of(rest.post("/v1/agents", json=body), 400)
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


def test_bad_requests_of_every_route(rest: httpx2.Client, sdk: openai.OpenAI) -> None:
    create(rest)

    def post(path: str, **kw: Any) -> httpx2.Response:
        return rest.post(path, **kw)

    assert error_of(post("/v1/agents", content=b"{nope"), 400)["code"] == "invalid_json"
    assert error_of(post("/v1/agents", json=[1]), 400)["code"] == "invalid_json"
    assert (
        error_of(post("/v1/agents", json={"name": "ada", "model": "openai/gpt-4o-mini"}), 409)[
            "code"
        ]
        == "agent_exists"
    )
    unknown = error_of(post("/v1/agents", json={"name": "b", "model": "openai/nope"}), 404)
    assert (unknown["code"], unknown["param"]) == ("model_not_found", "model")
    assert (
        error_of(post("/v1/agents", json={"name": "b", "model": "nobody/x"}), 404)["code"]
        == "model_not_found"
    )
    no_model = error_of(post("/v1/agents", json={"name": "b"}), 400)
    assert no_model["param"] == "model" and "GATEWAY_DEFAULT_MODEL" in no_model["message"]

    assert error_of(rest.get("/v1/agents/ghost"), 404)["code"] == "model_not_found"
    assert error_of(rest.delete("/v1/agents/ghost"), 404)["code"] == "model_not_found"
    assert error_of(rest.patch("/v1/agents/ghost", json={}), 404)["code"] == "model_not_found"
    assert (
        error_of(rest.patch("/v1/agents/ada", json={"model": "openai/nope"}), 404)["code"]
        == "model_not_found"
    )
    assert error_of(rest.patch("/v1/agents/ada", json={"name": None}), 400)["param"] == "name"
    assert (
        error_of(
            rest.patch(
                "/v1/agents/ada",
                json={"memory_blocks": [{"label": "a", "value": "xx", "limit": 1}]},
            ),
            400,
        )["param"]
        == "memory_blocks[0].value"
    )
    create(rest, name="bea")
    assert error_of(rest.patch("/v1/agents/bea", json={"name": "ada"}), 409)["code"] == (
        "agent_exists"
    )

    messages = "/v1/agents/ada/messages"
    for params, param in (
        ({"limit": 0}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": 501}, "limit"),
        ({"before": -1}, "before"),
        ({"before": 1, "after": 2}, "after"),
    ):
        assert error_of(rest.get(messages, params=params), 400)["param"] == param
    assert error_of(rest.get("/v1/agents/ghost/messages"), 404)["code"] == "model_not_found"
    for body, param in (
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"message": ""}, "message"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"message": "hi", "conversation": 3}, "conversation"),
    ):
        assert error_of(post(messages, json=body), 400)["param"] == param
    assert error_of(
        post(messages, json={"message": "hi"}, headers={"Idempotency-Key": "k" * 300}), 400
    )["param"] == ("Idempotency-Key")
    assert (
        error_of(post("/v1/agents/ghost/messages", json={"message": "hi"}), 404)["code"]
        == "model_not_found"
    )


def test_bad_pseudo_model_requests(rest: httpx2.Client, sdk: openai.OpenAI) -> None:
    create(rest)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as tools:
        sdk.chat.completions.create(
            model="agent/ada",
            tools=[tool],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "hi"}],
        )
    assert tools.value.body["param"] == "tools"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(
            model="agent/ghost", messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as no_input:
        sdk.chat.completions.create(
            model="agent/ada",
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        )
    assert "no user message after the last assistant" in no_input.value.message
    with pytest.raises(openai.BadRequestError) as long_id:
        sdk.chat.completions.create(
            model="agent/ada",
            extra_headers={"X-Conversation-Id": "c" * 300},
            messages=[{"role": "user", "content": "hi"}],
        )
    assert long_id.value.body["param"] == "conversation"  # type: ignore[index]


def test_a_disabled_provider_is_named_at_creation(
    make_gateway: Callable[..., GatewayServer], backend: str
) -> None:
    gw = make_gateway({"GATEWAY_DATABASE_URL": backend, "GATEWAY_DISABLE_OPENAI_PROVIDER": "1"})
    with httpx2.Client(base_url=gw.url) as rest:
        error = error_of(rest.post("/v1/agents", json={"name": "a", "model": "openai/gpt-4o"}), 404)
    assert error["code"] == "provider_not_enabled"


def test_conversations_are_listed_most_recent_first(
    rest: httpx2.Client, upstream: FakeUpstream
) -> None:
    create(rest)
    upstream.script(Reply.completion("one"), Reply.completion("two"), Reply.completion("three"))
    for conversation in ("first", "second", "first"):
        turn = rest.post(
            "/v1/agents/ada/messages", json={"message": "hi", "conversation": conversation}
        )
        assert turn.status_code == 200, turn.text
    listed = rest.get("/v1/agents/ada/conversations").json()
    assert [(c["id"], c["message_count"]) for c in listed["data"]] == [("first", 4), ("second", 2)]
    assert rest.get("/v1/agents/nobody/conversations").status_code == 404
    assert rest.get("/v1/agents/ada/conversations?limit=0").status_code == 400
