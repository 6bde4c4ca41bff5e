"""Stored responses on both databases: save, read back, who may see them, delete."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.agents.store import AgentStore
from gateway.responses.store import ResponseStore, StoredResponse


def record(response_id: str, key_id: str | None = None) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        model="openai/gpt-4o-mini",
        key_id=key_id,
        conversation=None,
        history=[{"id": "msg_0", "type": "message", "role": "user", "content": []}],
        input=[{"id": "msg_1", "type": "message", "role": "user", "content": []}],
        response={"id": response_id, "status": "completed", "output": [{"id": "msg_2"}]},
    )


async def test_a_saved_response_reads_back_and_deletes(backend: str) -> None:
    agents = AgentStore(backend)
    await agents.open()
    store = ResponseStore(agents)
    try:
        await store.save(record("resp_a"))
        await store.save(record("resp_b", key_id="key-1"))
        got = await store.get("resp_a", None)
        assert [i["id"] for i in got.context] == ["msg_0", "msg_1", "msg_2"]
        assert got.response["status"] == "completed"
        # A virtual key's responses are its own; shared ones are visible to every key.
        assert (await store.get("resp_b", "key-1")).key_id == "key-1"
        assert (await store.get("resp_a", "key-1")).id == "resp_a"
        with pytest.raises(errors.NotFound) as caught:
            await store.get("resp_b", "key-2", param="previous_response_id")
        assert caught.value.code == "not_found" and caught.value.param == "previous_response_id"
        await store.delete("resp_a", None)
        with pytest.raises(errors.NotFound):
            await store.get("resp_a", None)
        with pytest.raises(errors.NotFound):
            await store.delete("resp_a", None)
    finally:
        await agents.close()
