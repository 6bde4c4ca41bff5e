"""Pure functions: handle parsing, retry policy, error mapping."""

from __future__ import annotations

import email.utils
import time

import pytest

from gateway import errors
from gateway.providers.retry import RetryPolicy, parse_retry_after
from gateway.routing.handles import agent_handle, agent_name, parse_handle


@pytest.mark.parametrize(
    ("handle", "expected"),
    [
        ("kimi/kimi-k2-0905-preview", ("kimi", "kimi-k2-0905-preview")),
        ("together/meta-llama/Llama-3-70b", ("together", "meta-llama/Llama-3-70b")),
        ("gpt-4o", (None, "gpt-4o")),
        ("openai/", ("openai", "")),
        ("", (None, "")),
    ],
)
def test_parse_handle_splits_on_first_slash(handle, expected):
    assert parse_handle(handle) == expected


def test_retry_delays_double_and_cap():
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=10)
    unavailable = errors.UpstreamUnavailable("x")
    assert [policy.delay_for(unavailable, n, None) for n in (1, 2, 3, 6)] == [0.5, 1, 2, 10]


def test_retry_stops_at_max_attempts_and_for_non_retryable():
    policy = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=10)
    assert policy.delay_for(errors.UpstreamUnavailable("x"), 3, None) is None
    assert policy.delay_for(errors.UpstreamBadRequest("x"), 1, None) is None
    assert policy.delay_for(errors.UpstreamAuthFailed("x"), 1, None) is None
    # A timeout reaches the policy only as an upstream's 408 or 504: retried (issue 8).
    assert policy.delay_for(errors.UpstreamTimeout("x"), 1, None) == 0.5


def test_retry_after_wins_unless_too_long():
    policy = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=10)
    limited = errors.UpstreamRateLimited("x")
    assert policy.delay_for(limited, 1, "2") == 2
    assert policy.delay_for(limited, 1, "30") is None


def test_parse_retry_after_date():
    future = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 < (parse_retry_after(future) or 0) <= 5
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (
            400,
            b'{"error": {"message": "m", "code": "bad_thing"}}',
            errors.UpstreamBadRequest,
            "bad_thing",
        ),
        (
            400,
            b'{"error": {"message": "m", "type": "invalid_request_error"}}',
            errors.UpstreamBadRequest,
            "invalid_request_error",
        ),
        (
            400,
            b'{"error": {"code": "context_length_exceeded"}}',
            errors.UpstreamBadRequest,
            "context_length_exceeded",
        ),
        (401, b"", errors.UpstreamAuthFailed, "upstream_authentication_failed"),
        (403, b"<html>", errors.UpstreamAuthFailed, "upstream_authentication_failed"),
        (404, b"", errors.ModelNotFound, "model_not_found"),
        (429, b"", errors.UpstreamRateLimited, "upstream_rate_limited"),
        (500, b"nope", errors.UpstreamUnavailable, "upstream_unavailable"),
        (504, b"", errors.UpstreamTimeout, "upstream_timeout"),
    ],
)
def test_upstream_errors_mapped_by_status_and_body(status, body, cls, code):
    err = errors.from_upstream("p", status, body)
    assert type(err) is cls and err.code == code


def test_error_body_shape():
    body = errors.InvalidRequest("m", param="x").body()
    assert body == {
        "error": {
            "message": "m",
            "type": "invalid_request_error",
            "param": "x",
            "code": "invalid_value",
        }
    }


def test_agent_handles_are_matched_in_one_place():
    assert agent_name("agent/ada") == "ada"
    assert agent_name("agent/") == ""
    assert agent_name("kimi/agent/x") is None and agent_name("agentx") is None
    assert agent_handle("ada") == "agent/ada"
