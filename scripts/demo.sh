#!/usr/bin/env bash
# The main job: install, fill a database with 30 days of demo usage, serve it on port 8000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DB=${OPENUSAGE_DB:-demo.duckdb}
.venv/bin/openusage demo --db "$DB" --days 30
exec .venv/bin/openusage serve --db "$DB" "$@"
