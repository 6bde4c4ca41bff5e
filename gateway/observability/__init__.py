"""Observability: Prometheus metrics, request logs and optional OpenTelemetry tracing.

`metrics.py` defines every metric of DESIGN.md's table on a registry the services
object owns (kept as plain numbers by `inprocess.py` with one worker, in
prometheus-client's multiprocess files with several, see `multiprocess.py`).
`middleware.py` is the pure-ASGI layer that measures each request; `recorder.py`
folds finished requests into the metrics and the request log in batches.
`logging.py` sets log format and level for the gateway and uvicorn alike and renders
the request line. `tracing.py` imports opentelemetry only when tracing is switched on.
"""
