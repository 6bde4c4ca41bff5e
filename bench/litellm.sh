#!/usr/bin/env bash
# Prepares LiteLLM's proxy for the benchmark and prints the bench/run.py command
# that measures it.  LiteLLM gets its own virtualenv (bench/.litellm-venv): it is
# never a dependency of ours.  Set LITELLM_VERSION to pin a release, PY to choose
# the interpreter.
#
#   bash bench/litellm.sh            # install once, write the config, print the command
#   <paste the printed command>      # runs upstream, starlette and litellm rows
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
RUN_PY="$(cd "$HERE/.." && pwd)/.venv/bin/python"
[ -x "$RUN_PY" ] || RUN_PY=python3
VENV="$HERE/.litellm-venv"
CONF_DIR="$HERE/.litellm"
PY="${PY:-python3}"

if [ ! -x "$VENV/bin/litellm" ]; then
  echo "installing litellm[proxy] into $VENV ..." >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q "litellm[proxy]${LITELLM_VERSION:+==$LITELLM_VERSION}" >&2
fi
echo "using $("$VENV/bin/python" -m pip show litellm 2>/dev/null | grep '^Version' || echo 'litellm ?')" >&2

# The upstream's port is chosen at run time: the config reads it from the
# environment, which the printed command sets from bench/run.py's {upstream}.
mkdir -p "$CONF_DIR"
cat > "$CONF_DIR/config.yaml" <<'YAML'
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: os.environ/BENCH_UPSTREAM
      api_key: os.environ/OPENAI_API_KEY
litellm_settings:
  telemetry: false
YAML

# LITELLM_LOCAL_MODEL_COST_MAP: use the bundled price map instead of fetching it
# at start-up (the benchmark talks to 127.0.0.1 only).
# LITELLM_MASTER_KEY={key}: LiteLLM refuses to start without a master key; it is
# the key run.py sends with every request (--client-key), so auth is on, as for
# the gateway.
CMD="env BENCH_UPSTREAM={upstream} OPENAI_API_KEY=sk-bench LITELLM_MASTER_KEY={key}"
CMD="$CMD LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR"
CMD="$CMD $VENV/bin/litellm --config $CONF_DIR/config.yaml --host 127.0.0.1 --port {port} --num_workers 1"

echo "$RUN_PY bench/run.py --only upstream,starlette,litellm --extra-model gpt-4o-mini --extra \"litellm=$CMD\""
