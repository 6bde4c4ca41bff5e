from __future__ import annotations

import openai


def test_chat_roundtrip(gateway, upstream):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "echo: hello"
    assert upstream.chat_requests[0].json["model"] == "gpt-4o-mini"
