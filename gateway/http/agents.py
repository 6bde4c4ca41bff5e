"""`/v1/agents`: create, list, read, change and delete agents; their history; one turn.

`{ref}` is an agent's id or its name. Bodies are validated by the agent service's
schemas, so a mistake comes back as a 400 naming the field (`memory_blocks[1].value`).
History is paginated with `limit` and a `before` or `after` message id, newest page
first by default, each page in chronological order.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import checks, errors
from gateway.agents.schemas import AgentRecord
from gateway.agents.service import AgentService
from gateway.http.asgi import parse_json_object, read_body, timing_headers
from gateway.http.models import json_response
from gateway.providers.base import CallRecord
from gateway.tenants.caller import caller_of

MAX_PAGE = 500
DEFAULT_PAGE = 50


async def create_agent(request: Request) -> Response:
    body = await _json(request)
    _check_body(request, body)
    agent = await _agents(request).create_agent(body)
    return json_response(agent.to_api(), status=201)


async def list_agents(request: Request) -> Response:
    caller = caller_of(request.scope)
    agents = [a for a in await _agents(request).list_agents() if caller.may_use_agent(a.name)]
    return json_response({"object": "list", "data": [a.to_api() for a in agents]})


async def get_agent(request: Request) -> Response:
    agent = await _allowed(request)
    return json_response(agent.to_api())


async def update_agent(request: Request) -> Response:
    body = await _json(request)
    await _allowed(request)
    _check_body(request, body)
    agent = await _agents(request).update_agent(request.path_params["ref"], body)
    return json_response(agent.to_api())


async def delete_agent(request: Request) -> Response:
    await _allowed(request)
    agent = await _agents(request).delete_agent(request.path_params["ref"])
    return json_response({"id": agent.id, "object": "agent.deleted", "deleted": True})


async def list_messages(request: Request) -> Response:
    query = request.query_params
    limit = _int_param(query.get("limit"), "limit", DEFAULT_PAGE, 1, MAX_PAGE) or DEFAULT_PAGE
    # Message ids are BIGINT: a larger cursor would be an error in the database.
    before = _int_param(query.get("before"), "before", None, 0, checks.INT64_MAX)
    after = _int_param(query.get("after"), "after", None, 0, checks.INT64_MAX)
    if before is not None and after is not None:
        raise errors.InvalidRequest("give 'before' or 'after', not both", param="after")
    conversation = query.get("conversation") or request.headers.get("x-conversation-id")
    await _allowed(request)
    agent, page, more = await _agents(request).history(
        request.path_params["ref"],
        conversation=conversation,
        limit=limit,
        before=before,
        after=after,
    )
    return json_response(
        {
            "object": "list",
            "agent_id": agent.id,
            "data": [m.to_api() for m in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": more,
        }
    )


async def list_conversations(request: Request) -> Response:
    limit = _int_param(request.query_params.get("limit"), "limit", 100, 1, MAX_PAGE) or 100
    agent, data = await _agents(request).conversations(request.path_params["ref"], limit=limit)
    return json_response({"object": "list", "agent_id": agent.id, "data": data})


async def post_message(request: Request) -> Response:
    """One turn: `{"messages": [{"role": "user", "content": …}]}` or `{"message": "…"}`."""
    body = await _json(request)
    messages = _turn_input(body)
    conversation = body.get("conversation", request.headers.get("x-conversation-id"))
    if conversation is not None and not isinstance(conversation, str):
        raise errors.InvalidRequest("'conversation' must be a string", param="conversation")
    await _allowed(request)
    calls: list[CallRecord] = []
    request.scope.setdefault("state", {})["call_stats"] = calls
    async with request.app.state.services.drain.deadline():
        result = await _agents(request).run_turn(
            request.path_params["ref"],
            messages,
            conversation=conversation,
            idempotency_key=request.headers.get("idempotency-key"),
            calls=calls,
        )
    response = json_response(result.to_api())
    upstream = sum(call.upstream_seconds for call in calls)
    for name, value in timing_headers(upstream, replayed=result.replayed):
        response.headers[name.decode()] = value.decode()
    return response


def _turn_input(body: dict[str, Any]) -> Any:
    if ("messages" in body) == ("message" in body):
        raise errors.InvalidRequest(
            "give 'messages' (a list) or 'message' (a string)", param="messages"
        )
    if "message" in body:
        if not isinstance(body["message"], str) or not body["message"].strip():
            raise errors.InvalidRequest("'message' must be a non-empty string", param="message")
        return body["message"]
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise errors.InvalidRequest("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise errors.InvalidRequest("each message must be an object", param=f"messages[{i}]")
        if message.get("role") != "user":
            raise errors.InvalidRequest(
                "an agent turn takes user messages only", param=f"messages[{i}].role"
            )
    return messages


async def _allowed(request: Request) -> AgentRecord:
    """The agent `{ref}` names, if the caller's key may use it (403 otherwise)."""
    agent = await _agents(request).get_agent(request.path_params["ref"])
    if not caller_of(request.scope).may_use_agent(agent.name):
        raise errors.AgentNotAllowed(f"this key may not use agent '{agent.name}'", param="agent")
    return agent


def _check_body(request: Request, body: dict[str, Any]) -> None:
    """A key may only create (or rename to) agents it may use, on models it may use."""
    caller = caller_of(request.scope)
    name, model = body.get("name"), body.get("model")
    if isinstance(name, str) and not caller.may_use_agent(name):
        raise errors.AgentNotAllowed(f"this key may not use agent '{name}'", param="name")
    if isinstance(model, str) and not caller.may_use_model(model):
        raise errors.ModelNotAllowed(f"this key may not use model '{model}'", param="model")


def _agents(request: Request) -> AgentService:
    agents: AgentService = request.app.state.services.agents
    return agents


async def _json(request: Request) -> dict[str, Any]:
    limit = request.app.state.services.settings.max_body_bytes
    return parse_json_object(await read_body(request.scope, request.receive, limit))


def _int_param(
    raw: str | None, name: str, default: int | None, low: int, high: int | None
) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidRequest(f"'{name}' must be an integer", param=name) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise errors.InvalidRequest(f"'{name}' must be {bound}", param=name)
    return value
