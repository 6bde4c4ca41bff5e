"""Bad input is a 400 naming the field, never a 5xx, on SQLite and PostgreSQL.

One test per class of failure the fuzz test (`tests/fuzz`) found: JSON types the code
did not expect, integers beyond a column's range, NUL characters from a client, and
NUL characters from an upstream during an agent turn (stored, not a 500).
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from tests.agents.conftest import create, history
from tests.agents.test_rest import error_of
from tests.fake_upstream import FakeUpstream, Reply

TURN = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": ["user"], "content": "hi"}, "messages[0].role"),
        ({"role": {"user": 1}, "content": "hi"}, "messages[0].role"),
        ({"role": "user", "content": {"text": "hi"}}, "messages[0].content"),
        ({"role": "user", "content": [["hi"]]}, "messages[0].content[0]"),
        ({"role": "user", "content": "hi", "name": 5}, "messages[0].name"),
        ({"role": "assistant", "content": None, "tool_calls": {}}, "messages[0].tool_calls"),
        (
            {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": ["x"]}}]},
            "messages[0].tool_calls[0].function.name",
        ),
    ],
)
@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "agent/ada"])
def test_wrong_json_types_in_messages(
    rest: httpx2.Client, upstream: FakeUpstream, message: dict[str, Any], param: str, model: str
) -> None:
    create(rest)
    body = {"model": model, "messages": [message]}
    error = error_of(rest.post("/v1/chat/completions", json=body), 400)
    assert (error["code"], error["param"]) == ("invalid_value", param)
    assert upstream.chat_requests == []


@pytest.mark.parametrize("field", ["context_window_limit", "max_tokens", "max_reasoning_tokens"])
def test_settings_beyond_int32_on_create_and_patch(rest: httpx2.Client, field: str) -> None:
    too_big = error_of(rest.post("/v1/agents", json={"name": "a", field: 2**31}), 400)
    assert too_big["param"] == field
    agent = create(rest, **{field: 2**31 - 1})
    assert agent[field] == 2**31 - 1
    for value in (2**31, 2**63, 2**64):
        patched = error_of(rest.patch("/v1/agents/ada", json={field: value}), 400)
        assert (patched["code"], patched["param"]) == ("invalid_value", field)
    assert rest.get("/v1/agents/ada").json()[field] == 2**31 - 1


@pytest.mark.parametrize("cursor", ["before", "after"])
def test_cursors_beyond_int64(rest: httpx2.Client, cursor: str) -> None:
    create(rest)
    for value in (2**63, 2**64, 10**30):
        error = error_of(rest.get("/v1/agents/ada/messages", params={cursor: value}), 400)
        assert error["param"] == cursor
    largest = rest.get("/v1/agents/ada/messages", params={cursor: 2**63 - 1})
    assert largest.status_code == 200 and largest.json()["data"] == []


def test_nul_in_stored_fields_is_refused(rest: httpx2.Client) -> None:
    nul = "a\x00b"
    cases = [
        ({"name": "a", "description": nul}, "description"),
        ({"name": "a", "system": nul}, "system"),
        (
            {"name": "a", "memory_blocks": [{"label": "human", "value": nul}]},
            "memory_blocks[0].value",
        ),
    ]
    for body, param in cases:
        assert error_of(rest.post("/v1/agents", json=body), 400)["param"] == param
    create(rest)
    assert error_of(rest.patch("/v1/agents/ada", json={"system": nul}), 400)["param"] == "system"
    turns = [
        ({"message": nul}, "message"),
        ({"messages": [{"role": "user", "content": nul}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": nul}]}]},
            "messages[0].content[0].text",
        ),
    ]
    for body, param in turns:
        assert error_of(rest.post("/v1/agents/ada/messages", json=body), 400)["param"] == param
    assert history(rest, "ada") == []


def test_nul_in_path_and_query_is_refused(rest: httpx2.Client) -> None:
    create(rest)
    for method, path in [
        ("GET", "/v1/agents/a%00b"),
        ("DELETE", "/v1/agents/%00"),
        ("PATCH", "/v1/agents/ada%00"),
        ("GET", "/v1/agents/%00/messages"),
        ("POST", "/v1/agents/ada%00/messages"),
        ("GET", "/v1/models/openai%2Fgpt%00"),
    ]:
        response = rest.request(method, path, json=TURN)
        assert error_of(response, 400)["param"] == "path", (method, path)
    query = rest.get("/v1/agents/ada/messages", params={"conversation": "c\x00"})
    assert error_of(query, 400)["param"] == "conversation"
    assert rest.get("/v1/agents/ada").status_code == 200


def test_unknown_fields_are_not_errors(rest: httpx2.Client) -> None:
    made = rest.post(
        "/v1/agents",
        json={"name": "ada", "model": "openai/gpt-4o-mini", "color": "blue", "x": {"y": 1}},
    )
    assert made.status_code == 201, made.text
    patched = rest.patch("/v1/agents/ada", json={"description": "d", "color": "red"})
    assert patched.status_code == 200 and patched.json()["description"] == "d"
    turn = rest.post("/v1/agents/ada/messages", json={**TURN, "metadata": {"k": "v"}})
    assert turn.status_code == 200, turn.text


def test_nul_from_the_upstream_is_stored_replaced(
    rest: httpx2.Client, upstream: FakeUpstream
) -> None:
    """PostgreSQL refuses NUL in text: the turn used to fail with a 500, its user message
    kept and no answer. Now NULs from a model become U+FFFD in what is stored."""
    create(rest, memory_blocks=[{"label": "human", "value": "", "limit": 100}])
    upstream.script(
        Reply.completion(
            tool_calls=[
                {"name": "core_memory_append", "arguments": {"label": "human", "content": "x\x00y"}}
            ]
        ),
        Reply.completion(content="a\x00b", reasoning_content="r\x00"),
    )
    turn = rest.post("/v1/agents/ada/messages", json=TURN)
    assert turn.status_code == 200, turn.text
    stored = history(rest, "ada")
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[-1]["content"] == "a\ufffdb"
    assert stored[-1]["reasoning_content"] == "r\ufffd"
    blocks = rest.get("/v1/agents/ada").json()["memory_blocks"]
    assert blocks[0]["value"] == "x\ufffdy"
    # The conversation goes on.
    assert rest.post("/v1/agents/ada/messages", json=TURN).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_agent_replies_carry_no_null_system_fingerprint(
    rest: httpx2.Client, gw: Any, stream: bool
) -> None:
    create(rest)
    body = {"model": "agent/ada", "messages": [{"role": "user", "content": "hi"}]}
    response = rest.post("/v1/chat/completions", json={**body, "stream": stream})
    assert response.status_code == 200, response.text
    assert "system_fingerprint" not in response.text
    with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as sdk:
        reply = sdk.chat.completions.create(model="agent/ada", messages=body["messages"])
    assert reply.choices[0].message.content == "echo: hi"
