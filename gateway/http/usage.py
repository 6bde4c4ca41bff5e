"""`GET /v1/usage?start=&end=&group_by=key|model|day`: requests, tokens and cost.

The admin sees every key (`key_id` narrows it to one); a virtual key sees only its
own. `start` and `end` are UTC days (`YYYY-MM-DD`, or unix seconds), both included;
the default is the last 30 days. Usage is counted per day, and written to the store
every `GATEWAY_SPEND_FLUSH_SECONDS`, so another replica's last seconds may be missing.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from starlette.requests import Request
from starlette.responses import Response

from gateway import errors
from gateway.http.models import json_response
from gateway.tenants.caller import caller_of
from gateway.tenants.spend import GROUPS, day_of

DEFAULT_DAYS = 30


def _day(raw: str | None, name: str, default: str) -> str:
    if raw is None or raw == "":
        return default
    try:
        if raw.replace(".", "", 1).isdigit():
            return day_of(float(raw))
        return date.fromisoformat(raw[:10]).isoformat() if len(raw) >= 10 else _bad(name)
    except (ValueError, OverflowError, OSError):
        return _bad(name)


def _bad(name: str) -> str:
    raise errors.InvalidRequest(f"'{name}' must be a day (YYYY-MM-DD) or unix seconds", param=name)


async def usage(request: Request) -> Response:
    caller = caller_of(request.scope)
    query = request.query_params
    key_id = query.get("key_id") or None
    if not caller.is_admin:
        if caller.key_id is None:
            raise errors.PermissionDenied(
                "usage is for the admin key, or a virtual key reading its own",
                code="admin_key_required",
            )
        if key_id not in (None, caller.key_id):
            raise errors.PermissionDenied(
                "a virtual key may read only its own usage", param="key_id"
            )
        key_id = caller.key_id
    group_by = query.get("group_by") or "day"
    if group_by not in GROUPS:
        raise errors.InvalidRequest("'group_by' must be one of key, model, day", param="group_by")
    now = time.time()
    end = _day(query.get("end"), "end", day_of(now))
    start = _day(query.get("start"), "start", day_of(now - 86400 * (DEFAULT_DAYS - 1)))
    if start > end:
        raise errors.InvalidRequest("'start' is after 'end'", param="start")
    services = request.app.state.services
    tenants = services.tenants
    # This process's finished requests reach the ledger first (as /metrics does).
    services.recorder.flush()
    rows = await tenants.ledger.report(start, end, group_by, key_id)
    if group_by == "key":
        names = {k.id: k.name for k in await tenants.keys.list()}
        for row in rows:
            row["key_name"] = names.get(row["key_id"]) if row["key_id"] else None
    total = {
        name: sum(r[name] for r in rows)
        for name in (
            "requests",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "total_tokens",
            "cost_usd",
        )
    }
    total["cost_usd"] = round(total["cost_usd"], 9)
    return json_response(
        {
            "object": "usage",
            "start": start,
            "end": end,
            "group_by": group_by,
            "data": rows,
            "total": total,
            "generated_at": datetime.now(UTC).isoformat(),
        }
    )
