"""One `POST /v1/responses`: the checked request, the chat-service call, the stored result.

A model handle gets the whole context as chat messages: the stored context of
`previous_response_id` (its history, input and output), then the new input. An
`agent/<name>` handle gets only the new input, since the agent keeps its own
history: the conversation is the previous response's, else `X-Conversation-Id`,
else a new one named after this response, so a follow-up continues it.

A response is stored (unless `store` is false) as its final event or body goes out;
the store makes it readable at once here, and on other replicas as soon as it is
committed (a reader there waits for a response minted moments ago).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from gateway import errors
from gateway.chat import ChatContext, ChatService
from gateway.responses.store import ResponseStore, StoredResponse
from gateway.tenants.caller import Caller
from gateway.wire.responses import ResponsesRequest, chat_body, new_id, parse_request
from gateway.wire.responses_reply import ResponseEvents, finished, skeleton


@dataclass
class Turn:
    """A request ready to run: what goes to the chat service and what gets stored."""

    request: ResponsesRequest
    caller: Caller
    chat: dict[str, Any]
    ctx: ChatContext
    record: StoredResponse
    events: ResponseEvents = field(init=False)

    def __post_init__(self) -> None:
        self.events = ResponseEvents(
            self.record.response, encrypted_reasoning=self.request.encrypted_reasoning
        )

    @property
    def response(self) -> dict[str, Any]:
        return self.record.response


class ResponsesService:
    def __init__(self, chat: ChatService, store: ResponseStore) -> None:
        self.chat = chat
        self.store = store

    async def prepare(
        self,
        body: dict[str, Any],
        caller: Caller,
        *,
        conversation: str | None = None,
        idempotency_key: str | None = None,
    ) -> Turn:
        request = parse_request(body)
        target = await self.chat.resolve(request.model, caller)
        previous: StoredResponse | None = None
        if request.previous_response_id is not None:
            previous = await self.store.get(
                request.previous_response_id, caller.key_id, param="previous_response_id"
            )
        response_id = self.store.new_id() if request.store else new_id("resp")
        ctx = ChatContext()
        if target.agent is not None:
            history: list[dict[str, Any]] = []
            ctx.conversation = (
                previous.conversation if previous and previous.conversation else conversation
            ) or response_id
            ctx.idempotency_key = idempotency_key
        else:
            history = previous.context if previous else []
        record = StoredResponse(
            id=response_id,
            model=request.model,
            key_id=caller.key_id,
            conversation=ctx.conversation,
            history=history,
            input=request.items,
            response=skeleton(request, response_id, time.time()),
        )
        return Turn(request, caller, chat_body(request, history), ctx, record)

    async def complete(self, turn: Turn) -> dict[str, Any]:
        completion = await self.chat.complete(turn.chat, turn.caller, turn.ctx)
        self._note_turn(turn)
        response = finished(
            turn.response, completion, encrypted_reasoning=turn.request.encrypted_reasoning
        )
        self.save(turn)
        return response

    async def stream(self, turn: Turn) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Batches of typed events. A failure before the first batch raises (the facade
        answers with a plain error); after it, the stream ends with `response.failed`.
        """
        events = await self.chat.stream(turn.chat, turn.caller, turn.ctx)
        try:
            yield turn.events.start()
            try:
                async for event in events:
                    batch = turn.events.feed(event)
                    if batch:
                        yield batch
            except errors.GatewayError as exc:
                failed = turn.events.fail(exc)
                self.save(turn)
                yield failed
                return
            self._note_turn(turn)
            tail = turn.events.finish()
            self.save(turn)
            yield tail
        finally:
            await events.aclose()

    def save(self, turn: Turn) -> None:
        if turn.request.store:
            self.store.save(turn.record)

    def _note_turn(self, turn: Turn) -> None:
        if turn.ctx.turn is not None:
            turn.record.conversation = turn.ctx.turn.conversation
