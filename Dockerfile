# Slim, non-root image of the gateway. Build: docker build -t agent-gateway .
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, from pyproject.toml alone: a change to the code reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install --no-cache-dir --prefix=/install -r requirements.txt
COPY README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir --no-deps --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 gateway
COPY --from=build /install /usr/local
WORKDIR /home/gateway
# The documented defaults (all commented out); mount your own over it, or set GATEWAY_CONFIG.
COPY --chown=gateway config/gateway.toml /home/gateway/config/gateway.toml
USER gateway
# Exists, owned by the gateway user, before a volume is mounted on it.
RUN mkdir -p /home/gateway/data
ENV GATEWAY_DATA_DIR=/home/gateway/data \
    GATEWAY_CONFIG=/home/gateway/config/gateway.toml \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
# SIGTERM drains for GATEWAY_SHUTDOWN_GRACE (30 s): stop with a longer timeout
# (`docker stop -t 40`, compose's stop_grace_period) or lower the grace.
STOPSIGNAL SIGTERM
# Listening on all interfaces requires GATEWAY_API_KEYS (the gateway refuses otherwise).
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
