"""Reproducible benchmark of the gateway against pass-through baselines.

Starts a fake OpenAI upstream and the load generators pinned to one core, each
proxy under test pinned to the other, and measures every target in the same run:

  upstream   the fake upstream directly (the reference for "added" latency)
  bare       bare ASGI + aiohttp pass-through (the ceiling)
  starlette  Starlette + aiohttp pass-through (the reference for the ratio)
  gateway    python -m gateway serve, one worker
  messages   the same gateway on /v1/messages (the request in Anthropic's Messages API,
             translated to and from the OpenAI upstream)
  responses  the same gateway, on /v1/responses (the same request in the Responses API)
  extras     any command given with --extra NAME=COMMAND (e.g. LiteLLM, see litellm.sh)

Scenarios: closed loop with wrk (JSON at C=32, SSE at C=32, JSON at C=256 against a
50 ms upstream) and open loop at a fixed rate (added latency, added time to first
token).  Each scenario runs --runs times, targets interleaved within a run, and the
table reports medians.  Output: stdout and bench/results/latest.md (+ latest.json).

Run: python bench/run.py [--runs 3] [--duration 4] [--only gateway,starlette]
     [--extra NAME='COMMAND with {port}, {upstream}, {key}' --extra-model gpt-4o-mini]
(bench/litellm.sh prints the --extra for LiteLLM's proxy; bench/README.md has the details.)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import procs  # noqa: E402
from check import smoke  # noqa: E402
from common import MESSAGES_PATH, RESPONSES_PATH, ClosedLoopResult, OpenLoopResult, median  # noqa: E402

CHAT_PATH = "/v1/chat/completions"
BUILTIN = ["upstream", "bare", "starlette", "gateway", "gateway-vkey", "messages", "responses"]
# The virtual key of the gateway-vkey target: limits it never reaches, so every request
# runs the whole check (admission and charge, one Redis script each) and is admitted.
VKEY_LIMITS = {"rpm": 2**31 - 1, "tpm": 2**31 - 1, "max_budget_usd": 1e9, "budget_period": "daily"}


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    open_loop: bool
    stream: bool
    connections: int = 0
    delay: float = 0.0  # upstream delay before replying
    chunk_delay: float = 0.0  # upstream delay between SSE events


@dataclass
class Target:
    name: str
    label: str
    model: str
    argv: list[str] | None  # None: the upstream itself, nothing to start
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    health_path: str | None = None  # None: a TCP connect means ready
    proc: procs.Proc | None = None
    port: int | None = None
    failure: str | None = None
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # The key its clients send, when not the bench's client key (a virtual key).
    key: str | None = None
    path: str = CHAT_PATH  # the API route the load goes to


def acquire_lock(path: Path, timeout: float) -> TextIO:
    """One benchmark at a time per machine: two runs would share the cores and both
    report nonsense.  Waits (bounded) for a running one to finish; the lock goes
    with this process, however it ends."""
    handle = open(path, "a+")
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                msg = f"another benchmark still holds {path} after {timeout:.0f} s"
                raise RuntimeError(msg) from None
            if not announced:
                handle.seek(0)
                log(f"waiting for another benchmark to finish (pid {handle.read().strip() or '?'})")
                announced = True
            time.sleep(1)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    upstream_port: int
    upstream: procs.Proc | None = None
    wrk: str | None = None
    notes: list[str] = field(default_factory=list)
    load_at_start: str = field(default_factory=load_average)

    @property
    def upstream_base(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}/v1"

    def client_headers(self, target: Target | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key(target)}"}

    def api_key(self, target: Target | None = None) -> str:
        """The key every client request carries (targets without auth ignore it)."""
        if target is not None and target.key is not None:
            return target.key
        return str(self.args.client_key)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    all_ = [
        Scenario("json_c32", "JSON req/s C=32", False, False, connections=32),
        Scenario("sse_c32", "SSE streams/s C=32", False, True, connections=32),
        Scenario("ol_json", f"latency @{args.rate:g} req/s", True, False),
        Scenario(
            "ol_sse", f"TTFT @{args.rate:g} req/s", True, True, chunk_delay=args.ol_chunk_delay
        ),
        Scenario(
            "json_c256",
            f"JSON req/s C=256 @{args.slow_delay * 1000:g} ms",
            False,
            False,
            256,
            args.slow_delay,
        ),
    ]
    wanted = set(args.scenarios.split(","))
    return [s for s in all_ if s.key in wanted]


# ---------------------------------------------------------------- targets


def python_for_gateway() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def base_env() -> dict[str, str]:
    """The caller's environment minus provider settings, so a developer's real keys
    never reach a target (and never enable a second provider in the gateway)."""
    drop = ("KIMI_", "OPENAI_", "ANTHROPIC_", "GATEWAY_", "BENCH_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def make_targets(bench: Bench) -> list[Target]:
    args = bench.args
    only = set(args.only.split(",")) if args.only else set(BUILTIN)
    py = sys.executable
    up = bench.upstream_base
    env = {**base_env(), "OPENAI_API_KEY": "sk-bench", "BENCH_UPSTREAM": up}
    targets = [Target("upstream", "upstream direct", "gpt-4o-mini", None)]
    baselines = [
        ("bare", "bare ASGI + aiohttp", "bare_aiohttp.py"),
        ("starlette", "starlette + aiohttp", "starlette_aiohttp.py"),
    ]
    for name, label, script in baselines:
        if name in only:
            argv = [py, str(HERE / "baselines" / script), "--port", "{port}", "--upstream", up]
            targets.append(Target(name, label, "gpt-4o-mini", argv, env))
    if "gateway" in only:
        targets.append(gateway_target(bench))
    if "gateway-vkey" in only:
        targets.append(vkey_target(bench))
    if "messages" in only:
        # Its own process, so its CPU time is its own; idle while the others run.
        messages = gateway_target(bench, "messages")
        messages.label = "gateway /v1/messages"
        messages.path = MESSAGES_PATH
        targets.append(messages)
    if "responses" in only:
        # Its own process, so its CPU time is its own; idle while the others run.
        responses = gateway_target(bench, "responses")
        responses.label = "gateway /v1/responses"
        responses.path = RESPONSES_PATH
        targets.append(responses)
    for spec in args.extra:
        name, _, command = spec.partition("=")
        if name and command and (not args.only or name in only or "extra" in only):
            command = command.replace("{upstream}", up).replace("{key}", bench.api_key())
            # Through a shell, so the command may be a pipeline ("cd X && env … cmd");
            # the process-tree CPU accounting and the group stop cover its children.
            argv = ["sh", "-c", command]
            targets.append(Target(name, name, args.extra_model, argv, env))
    return targets


def gateway_target(bench: Bench, name: str = "gateway") -> Target:
    data_dir = bench.workdir / f"{name}-data"
    data_dir.mkdir(exist_ok=True)
    env = {
        **base_env(),
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": bench.upstream_base,
        "GATEWAY_DATA_DIR": str(data_dir),
        # Run from a scratch directory (so no config/gateway.toml of the work tree
        # is picked up), with the repo on the path in case it is not installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    if bench.args.gateway_auth:
        env["GATEWAY_API_KEYS"] = bench.api_key()
    argv = [
        python_for_gateway(),
        "-m",
        "gateway",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    return Target(
        name, "gateway (1 worker)", "openai/gpt-4o-mini", argv, env, bench.workdir, "/healthz"
    )


ADMIN_KEY = "sk-bench-admin-key"


def vkey_target(bench: Bench) -> Target:
    """The gateway, called with a virtual key that has rpm, tpm and a budget, on Redis."""
    target = gateway_target(bench)
    target.name, target.label = "gateway-vkey", "gateway, virtual key on Redis"
    target.env = {
        **target.env,
        "GATEWAY_DATA_DIR": str(bench.workdir / "gateway-vkey-data"),
        "GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_REDIS_URL": bench.args.redis_url,
        "GATEWAY_REDIS_PREFIX": f"bench-{os.getpid()}:",
    }
    (bench.workdir / "gateway-vkey-data").mkdir(exist_ok=True)
    return target


def create_virtual_key(port: int) -> str:
    body = json.dumps({"name": "bench", **VKEY_LIMITS}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/keys",
        body,
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["key"])


def start_target(bench: Bench, target: Target) -> None:
    """Start, wait until ready, smoke-check; on any failure set target.failure."""
    if target.argv is None:
        target.port = bench.upstream_port
    else:
        target.port = procs.free_port()
        argv = [a.replace("{port}", str(target.port)) for a in target.argv]
        target.proc = procs.start(
            target.name,
            argv,
            bench.workdir,
            bench.args.proxy_cpu,
            target.env,
            target.cwd,
            target.port,
        )
        why = procs.wait_ready(
            target.proc, bench.args.start_timeout, target.health_path, bench.client_headers(target)
        )
        if why is not None:
            target.failure = f"failed to start ({why})"
            log(f"{target.name}: {target.failure}\n{indent(target.proc.log_tail())}")
            procs.stop(target.proc)
            return
        if target.name == "gateway-vkey":
            target.key = create_virtual_key(target.port)
    why = smoke(target.port, target.path, target.model, bench.client_headers(target))
    if why is not None:
        target.failure = f"failed the smoke check ({why})"
        log(f"{target.name}: {target.failure}")
    else:
        log(f"{target.name}: ready on port {target.port}, smoke check passed")


# ---------------------------------------------------------------- measuring


def set_upstream(bench: Bench, scenario: Scenario) -> None:
    body = json.dumps({"delay": scenario.delay, "chunk_delay": scenario.chunk_delay}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{bench.upstream_port}/_bench/config", body, method="POST"
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()


def closed_loop(
    bench: Bench, target: Target, scenario: Scenario, duration: float
) -> ClosedLoopResult:
    assert target.port is not None
    url = f"http://127.0.0.1:{target.port}{target.path}"
    if bench.wrk:
        lua = bench.workdir / f"{target.name}-{'sse' if scenario.stream else 'json'}.lua"
        if not lua.exists():
            loadgen.write_lua(lua, url, target.model, scenario.stream, bench.api_key(target))
        return loadgen.run_wrk(
            bench.wrk, url, lua, scenario.connections, duration, bench.args.load_cpu
        )
    return loadgen.run_python_closed(
        url,
        target.model,
        scenario.stream,
        scenario.connections,
        duration,
        bench.args.load_cpu,
        bench.api_key(target),
    )


def measure_closed(bench: Bench, target: Target, scenario: Scenario) -> dict[str, Any]:
    """One measured closed-loop run, with the target's CPU time over it and how its
    core was shared (a busy machine shows up as "others", not as a slow target)."""
    pid = target.proc.pid if target.proc else None
    core = bench.args.proxy_cpu
    cpu_before = procs.cpu_seconds(pid) if pid else 0.0
    core_before = procs.core_ticks(core) if core is not None else None
    result = closed_loop(bench, target, scenario, bench.args.duration)
    data = result.to_dict()
    if pid and result.requests:
        used = procs.cpu_seconds(pid) - cpu_before
        data["cpu_ms_per_request"] = used * 1000 / result.requests
        if core is not None and core_before is not None:
            share = procs.core_share(core, core_before, procs.core_ticks(core), used)
            data["core_share_pct"] = asdict(share)
    return data


def measure_open(bench: Bench, target: Target, scenario: Scenario) -> dict[str, Any]:
    assert target.port is not None
    url = f"http://127.0.0.1:{target.port}{target.path}"
    args = bench.args
    # Only the TTFT median is reported for streams, so that scenario can be shorter.
    duration = args.ttft_duration if scenario.stream else args.ol_duration
    result: OpenLoopResult = loadgen.run_open(
        url,
        target.model,
        scenario.stream,
        args.rate,
        duration,
        args.load_cpu,
        bench.api_key(target),
        args.realtime,
    )
    return result.to_dict()


def warm_up(bench: Bench, target: Target, scenario: Scenario) -> None:
    """Unmeasured load first: opens pools, fills caches, lets CPU clocks settle.
    (The open-loop generator warms up by itself.)"""
    if not scenario.open_loop and bench.args.warmup > 0:
        closed_loop(bench, target, scenario, bench.args.warmup)


def run_one(bench: Bench, target: Target, scenario: Scenario, run: int) -> None:
    if target.failure:
        return
    if target.proc is not None and not target.proc.alive():
        target.failure = f"exited during the benchmark (code {target.proc.popen.returncode})"
        log(f"{target.name}: {target.failure}\n{indent(target.proc.log_tail())}")
        return
    try:
        if run == 0:
            warm_up(bench, target, scenario)
        data = (
            measure_open(bench, target, scenario)
            if scenario.open_loop
            else measure_closed(bench, target, scenario)
        )
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        data = {"error": f"{type(exc).__name__}: {exc}"}
    target.runs.setdefault(scenario.key, []).append(data)
    log(f"  {scenario.key:<9} run {run + 1}  {target.name:<10} {describe(data)}")


def describe(data: dict[str, Any]) -> str:
    """One progress line for a run's result."""
    if "error" in data:
        return f"ERROR {data['error']}"
    return describe_closed(data) if "rps" in data else describe_open(data)


def ms(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} ms"


def describe_closed(data: dict[str, Any]) -> str:
    cpu = data.get("cpu_ms_per_request")
    cpu_text = "" if cpu is None else f", {cpu:.3f} ms CPU/req"
    share = data.get("core_share_pct")
    if share:
        cpu_text += f" (core: target {share['target']:.0f}%, others {share['others']:.0f}%"
        cpu_text += f", idle {share['idle']:.0f}%, steal {share['steal']:.0f}%)"
    errs = f", errors {data['errors']}" if data["errors"] else ""
    lat = f"p50 {ms(data['latency_p50_ms'])}, p99 {ms(data['latency_p99_ms'])}"
    return f"{data['rps']:,.0f}/s, {lat}{cpu_text}{errs}"


def describe_open(data: dict[str, Any]) -> str:
    ttft = data.get("ttft_p50_ms")
    ttft_text = "" if ttft is None else f", TTFT p50 {ms(ttft, 3)}"
    errs = f", errors {data['errors']} ({data['error_sample']})" if data["errors"] else ""
    lat = f"p50 {ms(data['latency_p50_ms'], 3)}, p99 {ms(data['latency_p99_ms'], 3)}"
    return f"{lat}{ttft_text}, lag {data['max_lag_ms']:.1f} ms{errs}"


def run_all(bench: Bench, targets: list[Target]) -> None:
    """Scenario-major, targets interleaved inside each run: slow drift of the
    machine then spreads over all targets instead of biasing one."""
    for scenario in scenarios(bench.args):
        set_upstream(bench, scenario)
        realtime = bench.args.realtime and scenario.open_loop
        set_realtime(bench, targets, realtime)
        try:
            for run in range(bench.args.runs):
                for target in targets:
                    run_one(bench, target, scenario, run)
                    time.sleep(0.2)  # let closed connections and timers settle
        finally:
            set_realtime(bench, targets, False)


def set_realtime(bench: Bench, targets: list[Target], on: bool) -> None:
    """Open-loop runs only: the processes are mostly idle there, so SCHED_FIFO costs
    nobody anything, and it keeps other work on the machine out of the latency
    tails.  (Saturating runs stay at normal policy: a real-time process at 100 %
    would starve the kernel's own threads on its core.)"""
    procs_ = [t.proc for t in targets if t.proc is not None and t.proc.alive()]
    if bench.upstream is not None:
        procs_.append(bench.upstream)
    ok = all([procs.set_realtime(p.pid, on) for p in procs_])
    if on and not ok:
        bench.notes.append("could not switch to SCHED_FIFO for the open-loop runs")
        bench.args.realtime = False


# ---------------------------------------------------------------- report


def stat(target: Target, key: str, field_: str) -> float | None:
    values = [r.get(field_) for r in target.runs.get(key, []) if "error" not in r]
    return median([v for v in values if v is not None])


def added(target: Target, direct: Target, key: str, field_: str) -> float | None:
    """Median over runs of (through the target - direct) in the same run."""
    mine, ref = target.runs.get(key, []), direct.runs.get(key, [])
    diffs = [
        a[field_] - b[field_]
        for a, b in zip(mine, ref, strict=False)
        if "error" not in a
        and "error" not in b
        and a.get(field_) is not None
        and b.get(field_) is not None
    ]
    return median(diffs)


def fmt_num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def fmt_ms(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:+.{digits}f}"


def error_mark(target: Target, key: str) -> str:
    """A mark for cells whose runs saw errors, so a fast failure never passes as speed."""
    bad = 0
    for r in target.runs.get(key, []):
        if "error" in r:
            bad += 1
        elif isinstance(r.get("errors"), dict):
            bad += sum(r["errors"].values())
        elif isinstance(r.get("errors"), int):
            bad += r["errors"]
    return f" ⚠{bad} err" if bad else ""


def row(target: Target, direct: Target) -> list[str]:
    if target.failure:
        return [target.label, target.failure, "", "", "", "", ""]
    cells = [target.label]
    for key in ("json_c32", "sse_c32", "json_c256"):
        cells.append(fmt_num(stat(target, key, "rps")) + error_mark(target, key))
    if target is direct:
        p50, p99 = (
            stat(target, "ol_json", "latency_p50_ms"),
            stat(target, "ol_json", "latency_p99_ms"),
        )
        ttft = stat(target, "ol_sse", "ttft_p50_ms")
        cells.append("—" if p50 is None else f"({p50:.2f} / {p99:.2f} ms direct)")
        cells.append("—" if ttft is None else f"({ttft:.2f} ms direct)")
        cells.append("—")
        return cells
    p50, p99 = (
        added(target, direct, "ol_json", "latency_p50_ms"),
        added(target, direct, "ol_json", "latency_p99_ms"),
    )
    cells.append(f"{fmt_ms(p50)} / {fmt_ms(p99)} ms" + error_mark(target, "ol_json"))
    cells.append(
        f"{fmt_ms(added(target, direct, 'ol_sse', 'ttft_p50_ms'))} ms"
        + error_mark(target, "ol_sse")
    )
    cpu = stat(target, "json_c32", "cpu_ms_per_request")
    cells.append("—" if cpu is None else f"{cpu:.3f}")
    return cells


def table(bench: Bench, targets: list[Target]) -> str:
    args = bench.args
    head = [
        "target (1 core)",
        "JSON req/s C=32",
        "SSE streams/s C=32",
        f"JSON req/s C=256 @{args.slow_delay * 1000:g} ms",
        f"added latency p50 / p99 @{args.rate:g} req/s",
        "added TTFT p50",
        "CPU ms / JSON req",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target in targets:
        lines.append("| " + " | ".join(row(target, targets[0])) + " |")
    return "\n".join(lines)


def ratios(targets: list[Target]) -> list[str]:
    by_name = {t.name: t for t in targets}
    ref = by_name.get("starlette")
    if ref is None or ref.failure:
        return []
    out = []
    for target in targets:
        if target.name in ("upstream", "starlette") or target.failure:
            continue
        parts = []
        for key, label in (("json_c32", "JSON"), ("sse_c32", "SSE"), ("json_c256", "C=256")):
            mine, base = stat(target, key, "rps"), stat(ref, key, "rps")
            if mine is not None and base:
                parts.append(f"{label} {mine / base:.2f}x")
        if parts:
            out.append(f"- {target.label} / starlette + aiohttp: " + ", ".join(parts))
    return out


def targets_check(targets: list[Target]) -> list[str]:
    """The gateway against issue 2's targets (one worker, one core)."""
    gw = next((t for t in targets if t.name == "gateway" and not t.failure), None)
    if gw is None or not gw.runs:
        return []
    direct = targets[0]
    checks = [
        ("JSON req/s C=32 ≥ 4,000", stat(gw, "json_c32", "rps"), lambda v: v >= 4000),
        ("SSE streams/s C=32 ≥ 2,500", stat(gw, "sse_c32", "rps"), lambda v: v >= 2500),
        ("JSON req/s C=256 @50 ms ≥ 3,000", stat(gw, "json_c256", "rps"), lambda v: v >= 3000),
        ("added p50 ≤ 1 ms", added(gw, direct, "ol_json", "latency_p50_ms"), lambda v: v <= 1),
        ("added p99 ≤ 2 ms", added(gw, direct, "ol_json", "latency_p99_ms"), lambda v: v <= 2),
        ("added TTFT p50 ≤ 1 ms", added(gw, direct, "ol_sse", "ttft_p50_ms"), lambda v: v <= 1),
    ]
    out = []
    for label, value, ok in checks:
        if value is not None:
            out.append(f"- {'✅' if ok(value) else '❌'} {label}: {value:,.2f}")
    return out


def vkey_check(targets: list[Target]) -> list[str]:
    """A virtual key with rpm, tpm and a budget on Redis, against issue 10's targets."""
    by_name = {t.name: t for t in targets if not t.failure and t.runs}
    vkey, ref, gw = by_name.get("gateway-vkey"), by_name.get("starlette"), by_name.get("gateway")
    if vkey is None:
        return []
    direct = targets[0]
    out = []
    if ref is not None:
        for key, label in (("json_c32", "JSON"), ("sse_c32", "SSE")):
            mine, base = stat(vkey, key, "rps"), stat(ref, key, "rps")
            if mine is not None and base:
                ok = "✅" if mine / base >= 0.7 else "❌"
                out.append(f"- {ok} {label} ≥ 0.7x starlette + aiohttp: {mine / base:.2f}x")
    p50 = added(vkey, direct, "ol_json", "latency_p50_ms")
    if p50 is not None:
        out.append(f"- {'✅' if p50 <= 1 else '❌'} added p50 ≤ 1 ms: {p50:.2f}")
        plain = added(gw, direct, "ol_json", "latency_p50_ms") if gw is not None else None
        if plain is not None:
            out.append(f"- the key's checks add {p50 - plain:+.2f} ms p50 to the plain gateway's")
    return out


def translation_check(targets: list[Target]) -> list[str]:
    """The translating routes against issue 9's targets: ≥ 0.5x starlette + aiohttp's
    throughput, ≤ 1.5 ms added p50."""
    by_name = {t.name: t for t in targets if not t.failure and t.runs}
    ref = by_name.get("starlette")
    out = []
    for name in ("messages", "responses"):
        target = by_name.get(name)
        if target is None:
            continue
        if ref is not None:
            for key, label in (("json_c32", "JSON"), ("sse_c32", "SSE")):
                mine, base = stat(target, key, "rps"), stat(ref, key, "rps")
                if mine is not None and base:
                    ok = "✅" if mine / base >= 0.5 else "❌"
                    out.append(
                        f"- {ok} {target.label} {label} ≥ 0.5x starlette + aiohttp: "
                        f"{mine / base:.2f}x"
                    )
        p50 = added(target, targets[0], "ol_json", "latency_p50_ms")
        if p50 is not None:
            out.append(
                f"- {'✅' if p50 <= 1.5 else '❌'} {target.label} added p50 ≤ 1.5 ms: {p50:.2f}"
            )
    return out


def interference(targets: list[Target], threshold: float = 10.0) -> list[str]:
    """Closed-loop runs where something else took a real share of the target's core:
    their throughput is understated (CPU ms per request is not)."""
    out = []
    for target in targets:
        for key, runs in target.runs.items():
            shares = [r["core_share_pct"] for r in runs if "core_share_pct" in r]
            lost = median([s["others"] + s["steal"] for s in shares])
            if lost is not None and lost >= threshold:
                out.append(
                    f"- ⚠ {target.label}, {key}: other processes or the hypervisor took "
                    f"{lost:.0f}% of the target's core (median), so its throughput is "
                    "possibly understated; rerun on a quiet machine"
                )
    return out


def environment(bench: Bench) -> list[str]:
    args = bench.args
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        "?",
    )
    gen = (
        f"wrk ({bench.wrk})"
        if bench.wrk
        else "Python closed-loop fallback (bench/closedloop.py; may be the bottleneck)"
    )
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; commit: {commit or 'none'}",
        f"- machine: {os.cpu_count()} CPUs, {cpu_model}; Python {platform.python_version()}; "
        f"{platform.platform()}",
        f"- pinning: proxy on CPU {args.proxy_cpu}, "
        f"upstream + load generators on CPU {args.load_cpu}; niceness {args.nice}",
        f"- closed loop: {gen}, {args.duration:g} s per run after {args.warmup:g} s warm-up; "
        f"open loop: bench/openloop.py at {args.rate:g} req/s, "
        f"{args.ol_duration:g} s per latency run, {args.ttft_duration:g} s per TTFT run "
        f"with SSE events {args.ol_chunk_delay * 1000:g} ms apart"
        f"{', under SCHED_FIFO' if args.realtime else ''}",
        f"- medians of {args.runs} run(s); gateway auth {'on' if args.gateway_auth else 'off'}; "
        f"load average at start {bench.load_at_start} (other work on the machine skews results)",
    ]


def report(bench: Bench, targets: list[Target]) -> str:
    parts = ["# agent-gateway benchmark", "", *environment(bench), "", table(bench, targets), ""]
    ratio_lines = ratios(targets)
    if ratio_lines:
        parts += ["Ratios (target 0.6x or better for the gateway):", "", *ratio_lines, ""]
    checks = targets_check(targets)
    if checks:
        parts += ["Gateway against the targets of issue 2:", "", *checks, ""]
    vkey = vkey_check(targets)
    if vkey:
        parts += [
            "A virtual key with rpm, tpm and a budget, limits on Redis (issue 10's targets):",
            "",
            *vkey,
            "",
        ]
    translated = translation_check(targets)
    if translated:
        parts += ["Translating routes (issue 9's targets):", "", *translated, ""]
    busy = interference(targets)
    if busy:
        parts += ["Interference:", "", *busy, ""]
    parts += [
        "Added latency and TTFT are the target's value minus the upstream's, median of the "
        "per-run differences; ⚠ marks cells whose runs saw errors (see latest.json).",
    ]
    parts += [f"- note: {n}" for n in bench.notes]
    return "\n".join(parts) + "\n"


def save(bench: Bench, targets: list[Target], text: str) -> None:
    out_dir = Path(bench.args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(text)
    raw = {
        "args": {k: v for k, v in vars(bench.args).items()},
        "targets": {
            t.name: {"label": t.label, "failure": t.failure, "runs": t.runs} for t in targets
        },
    }
    (out_dir / "latest.json").write_text(json.dumps(raw, indent=1))


# ---------------------------------------------------------------- main


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def start_upstream(bench: Bench) -> None:
    argv = [sys.executable, str(HERE / "upstream.py"), "--port", str(bench.upstream_port)]
    bench.upstream = procs.start(
        "upstream", argv, bench.workdir, bench.args.load_cpu, base_env(), REPO, bench.upstream_port
    )
    why = procs.wait_ready(bench.upstream, 15, None, {})
    if why is not None:
        raise RuntimeError(f"fake upstream {why}:\n{bench.upstream.log_tail()}")


def setup_pinning(args: argparse.Namespace) -> None:
    cpus = os.sched_getaffinity(0)
    if args.proxy_cpu in cpus and args.load_cpu in cpus and args.proxy_cpu != args.load_cpu:
        # The orchestrator itself (smoke checks, polling) stays off the proxy's core.
        os.sched_setaffinity(0, {args.load_cpu})
        return
    log(
        f"warning: cannot pin to CPUs {args.proxy_cpu} and {args.load_cpu} "
        f"(have {sorted(cpus)}); not pinning"
    )
    args.proxy_cpu = args.load_cpu = None


def setup_priority(args: argparse.Namespace) -> None:
    """Only root may lower niceness; elsewhere run at normal priority."""
    if args.nice < 0 and os.geteuid() != 0:
        log("warning: not root, cannot use a negative --nice; running at normal priority")
        args.nice = 0
    procs.NICE = args.nice


def raise_on_sigterm() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so the finally block stops every child."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--runs", type=int, default=3, help="measured runs per scenario and target (default 3)"
    )
    p.add_argument(
        "--duration", type=float, default=4, help="seconds per closed-loop run (default 4)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=1,
        help="seconds of closed-loop warm-up per scenario (default 1)",
    )
    p.add_argument("--rate", type=float, default=100, help="open-loop requests/s (default 100)")
    p.add_argument(
        "--ol-duration",
        type=float,
        default=8,
        help="seconds per open-loop latency run (default 8; p99 needs samples)",
    )
    p.add_argument(
        "--ttft-duration", type=float, default=4, help="seconds per open-loop TTFT run (default 4)"
    )
    p.add_argument(
        "--ol-chunk-delay",
        type=float,
        default=0.002,
        help="upstream gap between SSE events in the TTFT scenario",
    )
    p.add_argument(
        "--slow-delay",
        type=float,
        default=0.05,
        help="upstream delay of the C=256 scenario (default 0.05)",
    )
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated targets among {','.join(BUILTIN)} and extra names",
    )
    p.add_argument(
        "--scenarios",
        default="json_c32,sse_c32,json_c256,ol_json,ol_sse",
        help="comma-separated scenario keys",
    )
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="another proxy to measure; {port} and {upstream} are filled in",
    )
    p.add_argument(
        "--extra-model", default="gpt-4o-mini", help="model name sent to --extra targets"
    )
    p.add_argument(
        "--gateway-auth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the gateway with GATEWAY_API_KEYS=<client key> (default on)",
    )
    p.add_argument(
        "--client-key",
        default="sk-bench-client-key",
        help="Bearer key every request carries; {key} in --extra commands",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis of the gateway-vkey target (its keys under a prefix of this run)",
    )
    p.add_argument(
        "--start-timeout", type=float, default=60, help="seconds a target may take to become ready"
    )
    p.add_argument(
        "--nice",
        type=int,
        default=-15,
        help="niceness of the targets, upstream and load generators (default -15, needs root; "
        "0 to leave priorities alone)",
    )
    p.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=os.geteuid() == 0,
        help="run the open-loop (latency) scenarios under SCHED_FIFO (default on as root)",
    )
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=900,
        help="seconds to wait for another benchmark on this machine to finish (default 900)",
    )
    p.add_argument("--proxy-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument(
        "--loadgen",
        choices=["wrk", "python"],
        default="wrk",
        help="closed-loop generator (python = fallback)",
    )
    p.add_argument(
        "--no-install", action="store_true", help="do not apt-get install wrk when missing"
    )
    p.add_argument("--results-dir", default=str(HERE / "results"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_sigterm()
    setup_pinning(args)
    setup_priority(args)
    lock_path = Path(tempfile.gettempdir()) / "agent-gateway-bench.lock"
    try:
        with (
            acquire_lock(lock_path, args.lock_timeout),
            tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp,
        ):
            return bench_main(Bench(args, Path(tmp), procs.free_port()))
    except KeyboardInterrupt:
        log("interrupted: everything started was stopped")
        return 130
    except RuntimeError as exc:
        log(f"error: {exc}")
        return 1


def bench_main(bench: Bench) -> int:
    if bench.args.loadgen == "wrk":
        bench.wrk = loadgen.ensure_wrk(not bench.args.no_install, bench.notes)
        if bench.wrk is None:
            bench.notes.append(
                "wrk unavailable: closed-loop numbers come from the slower Python generator"
            )
    targets: list[Target] = []
    try:
        start_upstream(bench)
        targets = make_targets(bench)
        for target in targets:
            start_target(bench, target)
        run_all(bench, targets)
    finally:
        # Also on Ctrl-C, SIGTERM or an error: nothing we started outlives us.
        for target in targets:
            if target.proc is not None:
                procs.stop(target.proc)
        if bench.upstream is not None:
            procs.stop(bench.upstream)
    text = report(bench, targets)
    print(text)
    save(bench, targets, text)
    log(f"written to {Path(bench.args.results_dir) / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
