#!/usr/bin/env bash
# The main job: install, fill the database (openusage.duckdb here, or $OPENUSAGE_DB) with
# 30 days of demo usage, and serve it on 127.0.0.1:8000. Arguments go to `openusage serve`
# (e.g. --port 8080). Set OPENUSAGE_SKIP_SETUP=1 to reuse an installed .venv as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${OPENUSAGE_SKIP_SETUP:-}" != 1 ] || [ ! -x .venv/bin/openusage ]; then
  bash scripts/setup.sh
fi
.venv/bin/openusage demo --days 30
exec .venv/bin/openusage serve "$@"
