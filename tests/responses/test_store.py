"""Stored responses on both databases: save, read back, who may see them, delete."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.agents.store import AgentStore
from gateway.responses.store import ResponseStore, StoredResponse


def record(store: ResponseStore, key_id: str | None = None) -> StoredResponse:
    response_id = store.new_id()
    return StoredResponse(
        id=response_id,
        model="openai/gpt-4o-mini",
        key_id=key_id,
        conversation=None,
        history=[{"id": "msg_0", "type": "message", "role": "user", "content": []}],
        input=[{"id": "msg_1", "type": "message", "role": "user", "content": []}],
        response={"id": response_id, "status": "completed", "output": [{"id": "msg_2"}]},
    )


async def test_a_saved_response_reads_back_here_at_once_and_elsewhere_once_written(
    backend: str,
) -> None:
    here, there = AgentStore(backend), AgentStore(backend)
    await here.open()
    await there.open()
    mine, other = ResponseStore(here), ResponseStore(there)
    try:
        shared, owned = record(mine), record(mine, key_id="key-1")
        mine.save(shared)
        mine.save(owned)
        # This process serves it before the writer has committed it...
        assert [i["id"] for i in (await mine.get(shared.id, None)).context] == [
            "msg_0",
            "msg_1",
            "msg_2",
        ]
        # ...and another waits for the commit of an id minted moments ago.
        assert (await other.get(shared.id, None)).response["status"] == "completed"
        await mine.flush()
        # A virtual key's responses are its own; shared ones are visible to every key.
        assert (await other.get(owned.id, "key-1")).key_id == "key-1"
        assert (await other.get(shared.id, "key-1")).id == shared.id
        with pytest.raises(errors.NotFound) as caught:
            await other.get(owned.id, "key-2", param="previous_response_id")
        assert caught.value.code == "not_found" and caught.value.param == "previous_response_id"
        await other.delete(shared.id, None)
        with pytest.raises(errors.NotFound):
            await mine.get(shared.id, None)
    finally:
        await mine.close()
        await here.close()
        await there.close()


@pytest.mark.parametrize(
    "response_id", ["resp_nope", "resp_000000000001abc", "x", "resp_ffffffffffffabc"]
)
async def test_unknown_ids_are_404s_without_waiting(backend: str, response_id: str) -> None:
    agents = AgentStore(backend)
    await agents.open()
    try:
        # Only an id minted moments ago is waited for; these are old or not ours, so
        # even a window of a day ends at once (a wait would time the test out).
        with pytest.raises(errors.NotFound):
            await ResponseStore(agents, young_seconds=86400).get(response_id, None)
    finally:
        await agents.close()


async def test_a_refused_row_loses_only_itself(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    here, there = AgentStore(backend), AgentStore(backend)
    await here.open()
    await there.open()
    mine, other = ResponseStore(here), ResponseStore(there, young_seconds=0)
    try:
        first = record(mine)
        mine.save(first)
        await mine.flush()
        # One batch: two good rows around one the database refuses (its id is taken).
        before, after = record(mine), record(mine)
        clash = record(mine)
        clash.id = first.id
        mine.save(before)
        mine.save(clash)
        mine.save(after)
        await mine.flush()
        assert (await other.get(before.id, None)).id == before.id
        assert (await other.get(after.id, None)).id == after.id
        assert (await other.get(first.id, None)).response["id"] == first.id
        assert "could not store response " + first.id in caplog.text
    finally:
        await mine.close()
        await here.close()
        await there.close()
