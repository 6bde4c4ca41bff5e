"""The statements on every turn's path, built once with bound parameters.

Building a SQLAlchemy statement and computing its cache key costs more than running
it against SQLite; built once, a statement keeps its memoized key and goes straight
to the compiled-SQL cache.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from gateway.agents import tables as t

_c, _m, _t, _k, _b = t.conversations, t.messages, t.turns, t.idempotency_keys, t.memory_blocks

# An agent by id or name: param ref.
AGENT = select(t.agents).where(
    or_(t.agents.c.id == bindparam("ref"), t.agents.c.name == bindparam("ref"))
)

_last_seq = select(func.max(_m.c.seq)).where(_m.c.conversation_id == _c.c.id).scalar_subquery()

_latest = _t.alias("latest")
_latest_created = (
    select(func.max(_t.c.created_at)).where(_t.c.conversation_id == _c.c.id).scalar_subquery()
)
# A conversation (id, context_start, last seq) and its newest turn's (latest_id,
# latest_status, latest_hash), which decide whether a request resumes that turn;
# params agent_id, key. One statement where two would do: it runs on every turn.
CONVERSATION = (
    select(
        _c.c.id,
        _c.c.context_start,
        _last_seq.label("last"),
        _latest.c.id.label("latest_id"),
        _latest.c.status.label("latest_status"),
        _latest.c.input_hash.label("latest_hash"),
    )
    .select_from(
        _c.outerjoin(
            _latest,
            and_(_latest.c.conversation_id == _c.c.id, _latest.c.created_at == _latest_created),
        )
    )
    .where(_c.c.agent_id == bindparam("agent_id"), _c.c.key == bindparam("key"))
)
NEW_CONVERSATION = insert(_c).returning(_c.c.id)

_turn_columns: tuple[Any, ...] = (_t, _k.c.key, _k.c.request_hash)
# The turn an Idempotency-Key names: params agent_id, key.
TURN_BY_KEY = (
    select(*_turn_columns)
    .join(_k, _k.c.turn_id == _t.c.id)
    .where(_k.c.agent_id == bindparam("agent_id"), _k.c.key == bindparam("key"))
)
# A turn by id: param turn_id.
TURN = (
    select(*_turn_columns)
    .outerjoin(_k, _k.c.turn_id == _t.c.id)
    .where(_t.c.id == bindparam("turn_id"))
    .limit(1)
)
NEW_TURN = insert(_t)
NEW_KEY = insert(_k)
# SET columns come from the execution's other parameters.
UPDATE_TURN = update(_t).where(_t.c.id == bindparam("turn_id"))
UPDATE_CONTEXT_START = (
    update(_c)
    .where(_c.c.id == bindparam("conversation_id"))
    .values(context_start=bindparam("start"))
)

# params conversation_id, start.
HISTORY = (
    select(_m)
    .where(_m.c.conversation_id == bindparam("conversation_id"), _m.c.seq >= bindparam("start"))
    .order_by(_m.c.seq)
)
TURN_MESSAGES = select(_m).where(_m.c.turn_id == bindparam("turn_id")).order_by(_m.c.seq)
NEW_MESSAGES = insert(_m).returning(_m.c.id, sort_by_parameter_order=True)

BLOCKS = select(_b).where(_b.c.agent_id == bindparam("agent_id")).order_by(_b.c.position)
