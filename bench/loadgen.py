"""Running the load generators as pinned subprocesses: wrk (closed loop, the
default), the Python closed-loop fallback, and the Python open-loop generator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import ClosedLoopResult, OpenLoopResult, parse_emitted, request_body
from procs import isolation, pinned

HERE = Path(__file__).resolve().parent

# wrk calls done() once at the end; printing JSON from it avoids parsing wrk's
# human-readable report (whose units change with magnitude).
WRK_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {api_key}"
wrk.body = [==[{body}]==]

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"connect\\": %d, "
    .. "\\"read\\": %d, \\"write\\": %d, \\"status\\": %d, \\"timeout\\": %d, "
    .. "\\"p50_us\\": %.0f, \\"p99_us\\": %.0f}}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def ensure_wrk(allow_install: bool, log: list[str]) -> str | None:
    """Path of wrk, installing the Debian package when missing and allowed."""
    found = shutil.which("wrk")
    if found or not allow_install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log.append("wrk missing and cannot apt-get install it (not root or no apt-get)")
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in (
        ["apt-get", "install", "-y", "wrk"],
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "wrk"],
    ):
        try:
            subprocess.run(attempt, env=env, capture_output=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            log.append(f"{' '.join(attempt)} timed out")
        if shutil.which("wrk"):
            return shutil.which("wrk")
    log.append("apt-get install -y wrk failed")
    return None


def write_lua(path: Path, url: str, model: str, stream: bool, api_key: str) -> Path:
    body = request_body(url, model, stream).decode()
    path.write_text(WRK_LUA.format(body=body, api_key=api_key))
    return path


def run_wrk(
    wrk: str, url: str, lua: Path, connections: int, duration: float, cpu: int | None
) -> ClosedLoopResult:
    # One thread: wrk shares its core with the upstream, more threads only contend.
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        url,
    ]
    argv[0] = wrk
    out = _run(pinned(argv, cpu), duration + 60)
    data = parse_emitted(out)
    if data is None:
        raise RuntimeError(f"wrk gave no result: {out[-500:]}")
    errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    return ClosedLoopResult(
        requests=int(data["requests"]),
        errors=errors,
        duration_s=data["duration_us"] / 1e6,
        latency_p50_ms=data["p50_us"] / 1000,
        latency_p99_ms=data["p99_us"] / 1000,
    )


def run_python_closed(
    url: str,
    model: str,
    stream: bool,
    connections: int,
    duration: float,
    cpu: int | None,
    api_key: str,
) -> ClosedLoopResult:
    argv = [sys.executable, str(HERE / "closedloop.py"), "--url", url, "--model", model]
    argv += ["--connections", str(connections), "--duration", str(duration), "--api-key", api_key]
    if stream:
        argv.append("--stream")
    data = parse_emitted(_run(pinned(argv, cpu), duration + 60))
    if data is None:
        raise RuntimeError("closedloop.py gave no result")
    return ClosedLoopResult(**data)


def run_open(
    url: str,
    model: str,
    stream: bool,
    rate: float,
    duration: float,
    cpu: int | None,
    api_key: str,
    realtime: bool = False,
) -> OpenLoopResult:
    # chrt: the generator runs under SCHED_FIFO like the targets (see procs.set_realtime).
    rt = ["chrt", "-f", "1"] if realtime else []
    argv = [
        *rt,
        sys.executable,
        str(HERE / "openloop.py"),
        "--url",
        url,
        "--model",
        model,
        "--api-key",
        api_key,
    ]
    argv += ["--rate", str(rate), "--duration", str(duration), "--timeout", "30"]
    if stream:
        argv.append("--stream")
    out = _run(pinned(argv, cpu), duration + 60)
    data = parse_emitted(out)
    if data is None:
        raise RuntimeError(f"openloop.py gave no result: {out[-500:]}")
    return OpenLoopResult(**data)


def _run(argv: list[str], timeout: float) -> str:
    """Run to completion (bounded); stdout and stderr together, for error messages."""
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
        **isolation(),
    )
    return proc.stdout.decode(errors="replace")
