"""Every row of DESIGN.md's error table, through the openai SDK and a real gateway."""

from __future__ import annotations

import httpx2
import openai
import pytest

from tests.fake_upstream import Reply

MODEL = "openai/gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]


def client(gateway, key: str = "k") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)


def post(gateway, body=None, *, content=None, headers=None) -> httpx2.Response:
    return httpx2.post(
        gateway.base_url + "/chat/completions",
        json=body,
        content=content,
        headers=headers,
        timeout=30,
    )


def error_of(response: httpx2.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def create(gateway, **kw):
    return client(gateway).chat.completions.create(model=MODEL, messages=HELLO, **kw)


# -- the gateway's own errors ---------------------------------------------------


def test_not_json(gateway):
    r = post(gateway, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert error_of(r)["code"] == "invalid_json"
    assert error_of(r)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "", "messages": HELLO}, "model"),
        ({"model": 42, "messages": HELLO}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        ({"model": MODEL, "messages": ["hi"]}, "messages[0]"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": MODEL, "messages": HELLO, "temperature": "hot"}, "temperature"),
        ({"model": MODEL, "messages": HELLO, "max_tokens": 1.5}, "max_tokens"),
        ({"model": MODEL, "messages": HELLO, "tools": {}}, "tools"),
        ({"model": "openai/", "messages": HELLO}, "model"),
        # Longer than the stored model column: spend for it could never be written.
        ({"model": "openai/" + "x" * 249, "messages": HELLO}, "model"),
    ],
)
def test_validation_names_the_field(gateway, upstream, body, param):
    r = post(gateway, body)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert (err["code"], err["param"]) == ("invalid_value", param)
    assert upstream.chat_requests == []


def test_json_array_body(gateway):
    r = post(gateway, [1, 2])
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"


@pytest.mark.parametrize("model", ["nosuch/gpt-4o", "openai/no-such-model", "no-such-model"])
def test_unknown_model(gateway, model):
    with pytest.raises(openai.NotFoundError) as err:
        client(gateway).chat.completions.create(model=model, messages=HELLO)
    assert err.value.code == "model_not_found" and err.value.param == "model"


def test_provider_not_enabled_names_the_variable(gateway):
    with pytest.raises(openai.NotFoundError) as err:
        client(gateway).chat.completions.create(model="kimi/kimi-latest", messages=HELLO)
    assert err.value.code == "provider_not_enabled"
    assert "KIMI_API_KEY" in err.value.message


def test_disabled_provider_names_the_variable(make_gateway):
    gateway = make_gateway({"GATEWAY_DISABLE_OPENAI_PROVIDER": "1"})
    with pytest.raises(openai.NotFoundError) as err:
        create(gateway)
    assert err.value.code == "provider_not_enabled"
    assert "GATEWAY_DISABLE_OPENAI_PROVIDER" in err.value.message


def test_auth(make_gateway, upstream):
    gateway = make_gateway({"GATEWAY_API_KEYS": "right"})
    for key in ("wrong", "righ", "right2"):
        with pytest.raises(openai.AuthenticationError) as err:
            client(gateway, key).chat.completions.create(model=MODEL, messages=HELLO)
        assert err.value.code == "invalid_api_key"
        assert err.value.type == "authentication_error"
    r = httpx2.get(gateway.base_url + "/models")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert httpx2.get(gateway.url + "/healthz").status_code == 200
    assert upstream.chat_requests == []
    assert client(gateway, "right").chat.completions.create(model=MODEL, messages=HELLO)


def test_body_limit(make_gateway, upstream):
    gateway = make_gateway({"GATEWAY_MAX_BODY_BYTES": "4096"})
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 5000}]}
    r = post(gateway, big)
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"


def test_twenty_megabyte_body_default_limit(gateway, upstream):
    big = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "'
    big += b"x" * (20 * 1024 * 1024) + b'"}]}'
    r = post(gateway, content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and error_of(r)["type"] == "invalid_request_error"
    assert upstream.chat_requests == []


def test_chunked_body_over_limit(make_gateway):
    gateway = make_gateway({"GATEWAY_MAX_BODY_BYTES": "4096"})

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    r = httpx2.post(gateway.base_url + "/chat/completions", content=chunks())
    assert r.status_code == 413


def test_unknown_route_and_method(gateway):
    r = httpx2.get(gateway.url + "/v2/nothing")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = httpx2.get(gateway.base_url + "/chat/completions")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"


# -- upstream errors -------------------------------------------------------------


def test_upstream_400_keeps_code(gateway, upstream):
    upstream.script(
        Reply.error(400, "bad logit_bias", code="invalid_logit_bias", param="logit_bias")
    )
    with pytest.raises(openai.BadRequestError) as err:
        create(gateway)
    assert err.value.code == "invalid_logit_bias" and err.value.param == "logit_bias"
    assert len(upstream.chat_requests) == 1


def test_upstream_context_length(gateway, upstream):
    upstream.script(Reply.error(400, "too long", code="context_length_exceeded"))
    with pytest.raises(openai.BadRequestError) as err:
        create(gateway)
    assert err.value.code == "context_length_exceeded"


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_failure_is_502_without_key(gateway, upstream, status):
    upstream.script(Reply.error(status, "Incorrect API key provided: sk-upstream-secret"))
    r = post(gateway, {"model": MODEL, "messages": HELLO})
    assert r.status_code == 502
    err = error_of(r)
    assert (err["type"], err["code"]) == ("upstream_error", "upstream_authentication_failed")
    assert "sk-upstream-secret" not in r.text
    assert len(upstream.chat_requests) == 1  # not retried


def test_upstream_429_retried_then_passed_on_with_retry_after(gateway, upstream):
    upstream.script(*[Reply.error(429, "slow down", retry_after="0")] * 3)
    r = post(gateway, {"model": MODEL, "messages": HELLO})
    assert r.status_code == 429
    err = error_of(r)
    assert (err["type"], err["code"]) == ("rate_limit_error", "upstream_rate_limited")
    assert r.headers["retry-after"] == "0"
    assert len(upstream.chat_requests) == 3


def test_upstream_429_with_long_retry_after_is_not_waited_out(gateway, upstream):
    upstream.script(Reply.error(429, "slow down", retry_after="120"))
    r = post(gateway, {"model": MODEL, "messages": HELLO})
    assert r.status_code == 429 and r.headers["retry-after"] == "120"
    assert len(upstream.chat_requests) == 1


@pytest.mark.parametrize(
    "failure",
    [
        Reply.error(500),
        Reply.error(503),
        Reply.empty(),
        Reply.drop(),
        Reply.json({"id": "x", "choices": []}),
    ],
    ids=["500", "503", "empty", "drop", "no-choices"],
)
def test_transient_failure_retried_then_succeeds(gateway, upstream, failure):
    upstream.script(failure, failure)
    reply = create(gateway)
    assert reply.choices[0].message.content == "echo: hello"
    assert len(upstream.chat_requests) == 3


def test_upstream_5xx_after_retries(gateway, upstream):
    upstream.script(*[Reply.error(502)] * 3)
    r = post(gateway, {"model": MODEL, "messages": HELLO})
    assert r.status_code == 502 and error_of(r)["code"] == "upstream_unavailable"
    assert len(upstream.chat_requests) == 3


def test_upstream_unreachable(make_gateway):
    gateway = make_gateway({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    r = post(gateway, {"model": MODEL, "messages": HELLO})
    assert r.status_code == 502 and error_of(r)["code"] == "upstream_unavailable"


def test_upstream_timeout(make_gateway, upstream, tmp_path):
    config = tmp_path / "slow.toml"
    config.write_text('[[providers]]\nname = "openai"\ntype = "openai"\nread_timeout = 0.3\n')
    gateway = make_gateway(config=config)
    upstream.script(Reply.delay(2, Reply.completion("late")))
    r = post(gateway, {"model": MODEL, "messages": HELLO})
    assert r.status_code == 504
    assert (error_of(r)["type"], error_of(r)["code"]) == ("upstream_error", "upstream_timeout")


# -- streams ---------------------------------------------------------------------


def test_stream_error_before_first_byte_is_a_plain_error(gateway, upstream):
    upstream.script(Reply.error(500), Reply.error(500), Reply.error(500))
    with pytest.raises(openai.InternalServerError) as err:
        list(create(gateway, stream=True))
    assert err.value.status_code == 502
    assert len(upstream.chat_requests) == 3


def test_stream_retried_before_first_byte(gateway, upstream):
    upstream.script(Reply.error(503), Reply.sse([], done=False))
    chunks = list(create(gateway, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello"
    assert len(upstream.chat_requests) == 3


def test_stream_cut_midway_ends_with_error_event(gateway, upstream):
    events = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": f"part{i}"}, "finish_reason": None}],
        }
        for i in range(5)
    ]
    upstream.script(Reply.sse(events, cut_after=2))
    r = post(gateway, {"model": MODEL, "messages": HELLO, "stream": True})
    assert r.status_code == 200
    data = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert len(data) == 3 and "part1" in data[1]
    assert '"code":"upstream_unavailable"' in data[2]
    assert "[DONE]" not in r.text
    assert len(upstream.chat_requests) == 1  # never retried after the first byte
    with pytest.raises(openai.APIError):
        upstream.script(Reply.sse(events, cut_after=2))
        list(create(gateway, stream=True))


def test_unfinished_stream_after_content_saying_done_ends_with_error(gateway, upstream):
    said = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "[DONE]"}, "finish_reason": None}],
    }
    upstream.script(Reply.sse([said, said], done=False))  # closed cleanly, unfinished
    r = post(gateway, {"model": MODEL, "messages": HELLO, "stream": True})
    last = r.text.strip().split("\n\n")[-1]
    assert '"code":"upstream_unavailable"' in last


def test_upstream_in_stream_error_is_relayed(gateway, upstream):
    upstream.script(Reply.sse([{"error": {"message": "overloaded", "code": "server_error"}}]))
    with pytest.raises(openai.APIError) as err:
        list(create(gateway, stream=True))
    assert "overloaded" in str(err.value)


def test_upstream_error_event_is_the_streams_last_word(gateway, upstream):
    error = {"error": {"message": "overloaded", "code": "server_error"}}
    upstream.script(Reply.sse([error], done=False))
    r = post(gateway, {"model": MODEL, "messages": HELLO, "stream": True})
    data = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert len(data) == 1 and '"overloaded"' in data[0]
    assert "[DONE]" not in r.text


def test_gateway_rate_limit(make_gateway, upstream):
    gateway = make_gateway(
        # One token a minute: on a loaded machine a faster refill lands mid-test.
        {"GATEWAY_RATE_LIMIT_RPM": "1", "GATEWAY_RATE_LIMIT_BURST": "2", "GATEWAY_API_KEYS": "a,b"}
    )
    body = {"model": MODEL, "messages": HELLO}
    statuses = [
        post(gateway, body, headers={"authorization": "Bearer a"}).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    r = post(gateway, body, headers={"authorization": "Bearer a"})
    err = error_of(r)
    assert (err["type"], err["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert int(r.headers["retry-after"]) >= 1
    # Another client has its own bucket; health checks are never limited.
    assert post(gateway, body, headers={"authorization": "Bearer b"}).status_code == 200
    assert httpx2.get(gateway.url + "/healthz").status_code == 200
    # The limit is per client across routes, not per route.
    r = httpx2.get(gateway.base_url + "/models", headers={"authorization": "Bearer a"})
    assert r.status_code == 429
    assert len(upstream.chat_requests) == 3
