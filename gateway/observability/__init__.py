"""Observability: Prometheus metrics, request logs and optional OpenTelemetry tracing.

`metrics.py` defines every metric of DESIGN.md's table on a registry the services
object owns; `middleware.py` is the pure-ASGI layer that measures each request and
writes its log line; `logging.py` configures log format and level for the gateway
and uvicorn alike; `tracing.py` is imported only when tracing is switched on;
`multiprocess.py` prepares prometheus-client's directory for `--workers N > 1`.
"""
