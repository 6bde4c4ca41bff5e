"""The chat service: the one place a chat request is resolved, allowed, sent and recorded.

Every facade calls it (`/v1/chat/completions`, `/v1/responses`, `/v1/messages`, the
MCP `chat` tool), and so does the agent loop for its model calls (through the model
lane, `ModelChat`). The request is the internal form: an OpenAI chat completions body
(`gateway/wire/internal.py`); replies are internal `Completion`s and `StreamEvent`s,
which each facade encodes in its own protocol with a translator from `gateway/wire/`.

API (stable; `services.chat` is a `ChatService`):

- `await chat.resolve(handle, caller) -> Target`: a model handle, an alias or
  `agent/<name>` (matched here and nowhere else), after the caller's policy:
  403 `model_not_allowed` / `agent_not_allowed` (`permission_error`).
- `await chat.complete(body, caller, ctx) -> Completion`: one whole reply. For
  `agent/<name>` an agent turn runs (conversation and idempotency key from `ctx`).
- `await chat.stream(body, caller, ctx) -> EventStream`: the reply's events (`Start`,
  deltas, `Finish`). A failure before anything was produced raises from this await,
  so a facade can still answer with a plain error status; after that the iteration
  raises a `GatewayError`. Always `await events.aclose()` (it releases the upstream).
- The pass-through lane, for a client whose wire format is the provider's (OpenAI
  chat, when `target.route.client.passthrough`): `await chat.forward(target, body,
  caller, ctx) -> bytes` and `await chat.relay(target, body, caller, ctx)` (SSE byte
  blocks; `aclose()` it). Bytes are forwarded, never re-serialized.
- The native lane for another client wire format: `chat.native(target,
  "anthropic-messages")` says whether the provider takes it as it is (an `anthropic`
  provider, or one with `anthropic_base_url`); `await chat.forward_native(target,
  wire, body, caller, ctx) -> NativeReply` sends it with only the model id replaced.

`ChatContext` carries what a facade knows beyond the body (conversation, idempotency
key, an agent step callback) and returns what it needs afterwards: `ctx.records`, one
`CallRecord` per upstream call, which the facade leaves in `scope["state"]["call_stats"]`
for the metrics and the request log (MCP, outside HTTP, records them itself);
`ctx.served_by`, the handle that answered; `ctx.turn`, an agent turn's result.
"""

from gateway.chat.context import ChatContext, EventStream, Target
from gateway.chat.service import ChatService

__all__ = ["ChatContext", "ChatService", "EventStream", "Target"]
