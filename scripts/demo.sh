#!/usr/bin/env bash
# The main job: install, fill the database (openusage.duckdb here, or $OPENUSAGE_DB) with
# 30 days of demo usage, and serve it on 127.0.0.1:8000. Arguments go to `openusage serve`
# (e.g. --port 8080). Set OPENUSAGE_SKIP_SETUP=1 to reuse an installed .venv as it is.
# The server is also a gateway: unless $OPENUSAGE_UPSTREAM_URL names a real upstream (such
# as https://api.openai.com/v1, with $OPENUSAGE_UPSTREAM_API_KEY), model calls go to a fake
# OpenAI-compatible upstream started here, so they can be tried without a key.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${OPENUSAGE_SKIP_SETUP:-}" != 1 ] || [ ! -x .venv/bin/openusage ]; then
  bash scripts/setup.sh
fi
.venv/bin/openusage demo --days 30
if [ -n "${OPENUSAGE_UPSTREAM_URL:-}" ]; then
  exec .venv/bin/openusage serve "$@"
fi
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/openusage fake-upstream --port "$port" &
upstream=$!
export OPENUSAGE_UPSTREAM_URL="http://127.0.0.1:$port/v1"
.venv/bin/openusage serve "$@" &
server=$!
# A signal to this script goes to the server, which finishes its requests; then both end.
trap 'kill -TERM "$server" 2>/dev/null || true' TERM INT
trap 'kill "$upstream" 2>/dev/null || true' EXIT
status=0
wait "$server" || status=$?
if kill -0 "$server" 2>/dev/null; then  # the wait was cut short by a signal
  status=0
  wait "$server" || status=$?
fi
exit "$status"
