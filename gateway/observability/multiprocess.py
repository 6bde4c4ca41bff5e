"""prometheus-client's multiprocess directory for one gateway instance.

With `--workers N > 1` every worker writes its samples to files in a directory and
`/metrics` sums them. The directory belongs to this instance (under the data dir,
keyed by port) and is emptied at start, so a restart does not resurrect old counts
and two instances never mix theirs. It must be in the environment before any worker
imports prometheus_client, which decides its storage at import time; this module
therefore does not import it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import MutableMapping
from pathlib import Path

from gateway.settings import ConfigError, Settings

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def instance_dir(settings: Settings) -> Path:
    # Port 0 picks a new port each run, so the supervisor's pid keys the directory instead.
    key = str(settings.port) if settings.port else f"pid-{os.getpid()}"
    return (settings.data_dir / "prometheus" / key).resolve()


def prepare(settings: Settings, environ: MutableMapping[str, str]) -> Path | None:
    """Set (workers > 1) or clear (one worker) the multiprocess directory in `environ`."""
    if settings.workers <= 1:
        # One process keeps its numbers in memory; a stray directory would only go stale.
        environ.pop(ENV_VAR, None)
        return None
    path = instance_dir(settings)
    try:
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(
            f"data_dir: cannot prepare the metrics directory {path} for --workers "
            f"{settings.workers}: {exc.strerror or exc}"
        ) from None
    environ[ENV_VAR] = str(path)
    return path
