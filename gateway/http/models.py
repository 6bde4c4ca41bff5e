"""`GET /v1/models` and `GET /v1/models/{handle}`: handles, not provider ids.

Agents are listed too, as `agent/<name>`, since a chat request can name them as models.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway import errors
from gateway.agents.schemas import AgentRecord
from gateway.providers.base import ModelInfo
from gateway.routing.groups import Group
from gateway.routing.handles import agent_handle, agent_name
from gateway.tenants.caller import caller_of


def model_entry(info: ModelInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": info.handle,
        "object": "model",
        "created": 0,
        "owned_by": info.provider,
        # Where the entry came from: the upstream's live list, the built-in fallback
        # list, or the config file.
        "source": info.source,
    }
    if info.context_window is not None:
        entry["context_window"] = info.context_window
    return entry


def agent_entry(agent: AgentRecord) -> dict[str, Any]:
    return {
        "id": agent_handle(agent.name),
        "object": "model",
        "created": int(agent.created_at),
        "owned_by": "agent-gateway",
        "source": "agent",
    }


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def list_models(request: Request) -> Response:
    """The models and agents the caller's key may use (everything for other keys)."""
    services = request.app.state.services
    caller = caller_of(request.scope)
    data = [model_entry(m) for m in await services.router.list_models()]
    data = [m for m in data if caller.may_use_model(m["id"])]
    groups = [g for g in services.groups.groups.values() if caller.may_use_model(g.name)]
    if groups:
        resting = await services.groups.resting()
        data += [group_entry(g, resting.get(g.name, [])) for g in groups]
    agents = await services.agents.list_agents()
    data += [agent_entry(a) for a in agents if caller.may_use_agent(a.name)]
    return json_response({"object": "list", "data": data})


def group_entry(group: Group, resting: list[str]) -> dict[str, Any]:
    """A model group: its targets in order, and those resting after failures."""
    return {
        "id": group.name,
        "object": "model",
        "created": 0,
        "owned_by": "agent-gateway",
        "source": "group",
        "strategy": group.strategy,
        "targets": list(group.targets),
        "cooling_down": resting,
    }


async def get_model(request: Request) -> Response:
    services = request.app.state.services
    caller = caller_of(request.scope)
    handle: str = request.path_params["handle"]
    name = agent_name(handle)
    if name is not None:
        agent = await services.agents.get_agent(name)
        if not caller.may_use_agent(agent.name):
            raise errors.AgentNotAllowed(
                f"this key may not use agent '{agent.name}'", param="model"
            )
        return json_response(agent_entry(agent))
    if not caller.may_use_model(handle):
        raise errors.ModelNotAllowed(f"this key may not use model '{handle}'", param="model")
    group = services.groups.get(handle)
    if group is not None:
        resting = await services.groups.resting()
        return json_response(group_entry(group, resting.get(group.name, [])))
    route = await services.router.resolve(handle)
    info = route.info or ModelInfo(route.model, route.provider, None, "fallback")
    return json_response(model_entry(info))
