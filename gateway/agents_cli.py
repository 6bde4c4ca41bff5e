"""`gateway agents list|create|show|delete|chat`: agents for operators, from a terminal.

These commands use the agent service directly on the configured store (the same
`GATEWAY_DATABASE_URL` and provider keys as `gateway serve`), so they work whether or
not a gateway is running; one that is running sees the changes at once, and turns
stay serialized between the two (the store's locks work across processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import errors
from gateway.cli_store import EXIT_FAILED, run_command
from gateway.settings import Settings

QUIT = frozenset({"/exit", "/quit"})


def add_parser(sub: Any) -> None:
    """Add `agents …` to the `gateway` command's subparsers."""
    agents = sub.add_parser("agents", help="manage and chat with stateful agents")
    verbs = agents.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="list agents").set_defaults(run=_run(_list))
    create = verbs.add_parser("create", help="create an agent")
    create.add_argument("name")
    create.add_argument("--model", help="model handle (default: GATEWAY_DEFAULT_MODEL)")
    create.add_argument("--system", help="system prompt")
    create.add_argument("--description", default="")
    create.add_argument(
        "--memory",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="a memory block (repeatable); default: empty 'persona' and 'human'",
    )
    create.add_argument("--context-window-limit", type=int)
    create.add_argument("--max-tokens", type=int)
    create.set_defaults(run=_run(_create))
    for verb, doc, fn in (
        ("show", "print an agent as JSON", _show),
        ("delete", "delete an agent and its history", _delete),
    ):
        parser = verbs.add_parser(verb, help=doc)
        parser.add_argument("name", help="agent name or id")
        parser.set_defaults(run=_run(fn))
    chat = verbs.add_parser("chat", help="talk to an agent (an interactive prompt)")
    chat.add_argument("name", help="agent name or id")
    chat.add_argument("--conversation", help="conversation id (default: 'default')")
    chat.set_defaults(run=_run(_chat))


Command = Callable[[Any, argparse.Namespace], Awaitable[int]]


def _run(command: Command) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        from gateway.services import Services

        async def main() -> int:
            services = Services(settings)
            return await run_command(
                services.start, lambda: command(services.agents, args), services.close
            )

        return asyncio.run(main())

    return run


async def _list(agents: Any, args: argparse.Namespace) -> int:
    rows = [(a.name, a.model, a.id, a.description) for a in await agents.list_agents()]
    header = ("NAME", "MODEL", "ID", "DESCRIPTION")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]).rstrip())
    return 0


async def _create(agents: Any, args: argparse.Namespace) -> int:
    spec: dict[str, Any] = {"name": args.name, "description": args.description}
    for key in ("model", "system", "context_window_limit", "max_tokens"):
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    if args.memory:
        blocks = []
        for item in args.memory:
            label, sep, value = item.partition("=")
            if not sep:
                print(f"gateway: --memory wants LABEL=VALUE, got {item!r}", file=sys.stderr)
                return EXIT_FAILED
            blocks.append({"label": label, "value": value})
        spec["memory_blocks"] = blocks
    agent = await agents.create_agent(spec)
    print(f"created agent {agent.name} ({agent.id}) on {agent.model}")
    return 0


async def _show(agents: Any, args: argparse.Namespace) -> int:
    agent = await agents.get_agent(args.name)
    print(json.dumps(agent.to_api(), indent=2, ensure_ascii=False))
    return 0


async def _delete(agents: Any, args: argparse.Namespace) -> int:
    agent = await agents.delete_agent(args.name)
    print(f"deleted agent {agent.name} ({agent.id})")
    return 0


async def _chat(agents: Any, args: argparse.Namespace) -> int:
    agent = await agents.get_agent(args.name)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"Talking to {agent.name} ({agent.model}); /exit or Ctrl-D to leave.")
    while True:
        line = await asyncio.to_thread(_read, "you> " if interactive else "")
        if line is None or line.strip() in QUIT:
            return 0
        if not line.strip():
            continue
        print(f"{agent.name}> ", end="", flush=True)
        try:
            stream = await agents.stream_turn(agent.id, line, conversation=args.conversation)
            async for delta in stream:
                print(delta, end="", flush=True)
            print()
        except errors.GatewayError as exc:
            # One failed turn does not end the session; the input stays in the history.
            print(f"\n[error: {exc.message}]", file=sys.stderr)


def _read(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None
