"""What the store-backed CLI commands (`gateway agents …`, `gateway keys …`) share:
run one command against an opened resource, and turn the gateway's errors and an
unreachable store into one line on stderr and exit code 1."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from gateway import errors

EXIT_FAILED = 1


async def run_command(
    start: Callable[[], Awaitable[object]],
    command: Callable[[], Awaitable[int]],
    close: Callable[[], Awaitable[object]],
) -> int:
    from gateway.agents.store import StoreUnavailable

    try:
        await start()
        return await command()
    except errors.GatewayError as exc:
        print(f"gateway: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except StoreUnavailable as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await close()
