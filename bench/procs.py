"""Starting, pinning, probing and stopping the benchmark's processes.

Every process is started in its own session (process group), so stopping it also
stops anything it spawned (uvicorn workers, a shell's child), and only what this
benchmark started is ever signalled.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None
    _log: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A currently free loopback port (the kernel's pick; a race is harmless here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Priority of everything the benchmark starts (set from --nice).  On a shared
# machine a negative value keeps other work from taking the benchmark's cores
# (-15 leaves one ordinary CPU hog ~3% of the core).
NICE = 0


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """Prefix with taskset, which execs the command: the PID stays the command's
    own, and its children inherit the core."""
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


def _raise_priority() -> None:
    """Runs in the child between fork and exec, after setsid.  With the kernel's
    autogroup scheduling (the default on desktop-style kernels) CPU is shared
    between sessions first, so a process's own nice value only matters inside its
    session: set the new session's autogroup nice as well."""
    if not NICE:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(NICE))
    except OSError:
        pass  # no permission or no autogroup: run at normal priority


def isolation() -> dict[str, Any]:
    """Popen keyword arguments for every child: its own session (so its whole
    process group can be stopped, and it gets its own autogroup) and priority."""
    return {"start_new_session": True, "preexec_fn": _raise_priority}


def start(
    name: str,
    argv: list[str],
    log_dir: Path,
    cpu: int | None,
    env: dict[str, str],
    cwd: Path,
    port: int | None = None,
) -> Proc:
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")
    popen = subprocess.Popen(
        pinned(argv, cpu),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(cwd),
        **isolation(),
    )
    return Proc(name, popen, log_path, port, log)


def stop(proc: Proc, grace: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
    if proc.alive():
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.popen.wait(timeout=grace)
    # A child that outlived its leader still has the group id: make sure it goes too.
    _signal_group(proc, signal.SIGKILL)
    if proc._log is not None:
        proc._log.close()  # type: ignore[attr-defined]


def _signal_group(proc: Proc, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group id is the leader's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- readiness


def tcp_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ready(port: int, path: str, headers: dict[str, str]) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_ready(
    proc: Proc, timeout: float, health_path: str | None, headers: dict[str, str]
) -> str | None:
    """Poll until ready; return None, or why it never became ready."""
    assert proc.port is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            return f"exited with code {proc.popen.returncode}"
        ok = http_ready(proc.port, health_path, headers) if health_path else tcp_ready(proc.port)
        if ok:
            return None
        time.sleep(0.1)
    return f"not ready after {timeout:.0f} s"


# ---------------------------------------------------------------- CPU accounting


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read_stat(int(entry.name))
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    return children


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces):
    [0] state, [1] ppid, ..., [11] utime, [12] stime (in clock ticks)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its live descendants (a gateway may fork
    workers).  Resolution is one clock tick (10 ms), fine over a multi-second run."""
    ticks = 0
    for member in process_tree(pid):
        stat = _read_stat(member)
        if stat is not None:
            ticks += int(stat[11]) + int(stat[12])
    return ticks / CLK_TCK


def core_ticks(cpu: int) -> tuple[int, int, int, int]:
    """(total, busy, idle, steal) ticks of one CPU from /proc/stat; busy counts
    user, nice, system, irq and softirq (where loopback traffic is processed)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
            busy = user + nice + system + irq + softirq
            return busy + idle + iowait + steal, busy, idle + iowait, steal
    raise ValueError(f"no cpu{cpu} in /proc/stat")


@dataclass
class CoreShare:
    """How one core's time was spent over an interval, in percent."""

    target: float  # the process tree under test
    others: float  # anything else that ran there: it took CPU from the target
    idle: float
    steal: float  # taken by the hypervisor


def core_share(
    cpu: int, before: tuple[int, int, int, int], after: tuple[int, int, int, int], target_s: float
) -> CoreShare:
    total, busy, idle, steal = (a - b for a, b in zip(after, before, strict=True))
    if total <= 0:
        return CoreShare(0.0, 0.0, 0.0, 0.0)
    target_ticks = target_s * CLK_TCK
    others = max(0.0, busy - target_ticks)
    return CoreShare(
        100 * target_ticks / total, 100 * others / total, 100 * idle / total, 100 * steal / total
    )


def set_realtime(pid: int, on: bool) -> bool:
    """Switch every thread of a process tree to SCHED_FIFO (priority 1) or back to
    the normal policy (its nice value is kept).  A real-time thread runs the moment
    it wakes, instead of waiting out another task's time slice: that removes other
    work on the machine from the latency percentiles.  False if not permitted."""
    policy, param = (
        (os.SCHED_FIFO, os.sched_param(1)) if on else (os.SCHED_OTHER, os.sched_param(0))
    )
    ok = True
    for member in process_tree(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{member}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setscheduler(tid, policy, param)
            except ProcessLookupError:
                pass
            except PermissionError:
                ok = False
    return ok
