"""No input gets a 5xx: hypothesis fuzzes every route of a real gateway, per store.

Each example is one request drawn from `routes.ROUTES` (hostile JSON types, huge
integers, NULs, deep nesting, odd unicode in bodies, query strings, path parameters,
headers, and JSON-RPC bodies for `/mcp` in both protocol eras), sent to a real uvicorn
in front of the fake upstream, on SQLite and on PostgreSQL.

CI runs a fixed, derandomized set of `GATEWAY_FUZZ_EXAMPLES` (default 200) examples per
store. To explore, raise it and set `GATEWAY_FUZZ_SEED`; `GATEWAY_FUZZ_REPORT=1` counts
every failure instead of stopping (and shrinking) at the first, and prints them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.routes import ROUTES, Request
from tests.fuzz.target import ADMIN_KEY, Target, problem
from tests.gateway_server import GatewayServer

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "200"))
SEED = os.environ.get("GATEWAY_FUZZ_SEED")
REPORT = os.environ.get("GATEWAY_FUZZ_REPORT") == "1"

requests = st.sampled_from(ROUTES).flatmap(lambda route: route.requests)


def test_no_request_gets_a_5xx(agent_gateway: Callable[..., GatewayServer], backend: str) -> None:
    gateway = agent_gateway({"GATEWAY_ADMIN_KEY": ADMIN_KEY})
    target = Target(gateway)
    failures: list[tuple[Request, str]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=[Phase.generate] if REPORT else [Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(requests)
    def check(request: Request) -> None:
        found = problem(target.send(request))
        if found is None:
            return
        failures.append((request, found))
        assert REPORT, f"{request.method} {request.path} {request.query}: {found}\n{request}"

    if SEED is not None:
        check = seed(int(SEED))(check)
    try:
        check()
    finally:
        target.close()
    if failures:
        by_route = Counter(f"{r.method} {r.path.split('?')[0]}" for r, _ in failures)
        lines = [f"{len(failures)} of {EXAMPLES} requests failed on {backend.split(':')[0]}"]
        lines += [f"  {n} x {route}" for route, n in by_route.most_common()]
        lines += [
            f"- {r.method} {r.path} {r.query} {r.body!r:.300}\n  {why}" for r, why in failures
        ]
        print("\n".join(lines))
    assert not failures, f"{len(failures)} requests got a 5xx or an internal error"
