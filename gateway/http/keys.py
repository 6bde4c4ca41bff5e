"""`/v1/keys` (admin): create, list, read, change and revoke virtual keys.

`POST` answers 201 with the key and its secret (`"key": "sk-gw-…"`), which is shown
this once; only its hash is kept. `DELETE` revokes: the key stops on every replica
within seconds, and its usage stays readable. `{ref}` is a key's id or name.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import errors
from gateway.http.asgi import parse_json_object, read_body
from gateway.http.models import json_response
from gateway.tenants.caller import caller_of
from gateway.tenants.keys import KeyStore


def require_admin(request: Request) -> None:
    if not caller_of(request.scope).is_admin:
        raise errors.PermissionDenied(
            "this route needs the admin key (GATEWAY_ADMIN_KEY)", code="admin_key_required"
        )


def _keys(request: Request) -> KeyStore:
    require_admin(request)
    keys: KeyStore = request.app.state.services.tenants.keys
    return keys


def _forget(request: Request) -> None:
    # This process sees its own changes at once; the others within the cache's TTL.
    request.app.state.services.tenants.auth.forget()


async def _json(request: Request) -> dict[str, Any]:
    limit = request.app.state.services.settings.max_body_bytes
    return parse_json_object(await read_body(request.scope, request.receive, limit))


async def create_key(request: Request) -> Response:
    keys = _keys(request)
    record, secret = await keys.create(await _json(request))
    _forget(request)
    return json_response({**record.to_api(), "key": secret}, status=201)


async def list_keys(request: Request) -> Response:
    records = await _keys(request).list()
    return json_response({"object": "list", "data": [r.to_api() for r in records]})


async def get_key(request: Request) -> Response:
    record = await _keys(request).get(request.path_params["ref"])
    return json_response(record.to_api())


async def update_key(request: Request) -> Response:
    keys = _keys(request)
    record = await keys.update(request.path_params["ref"], await _json(request))
    _forget(request)
    return json_response(record.to_api())


async def delete_key(request: Request) -> Response:
    record = await _keys(request).revoke(request.path_params["ref"])
    _forget(request)
    return json_response({"id": record.id, "object": "key.deleted", "deleted": True})
