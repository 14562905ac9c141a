#!/usr/bin/env bash
# The suite against the lowest release of each dependency that pyproject.toml allows: a
# lower bound nobody runs is a guess. A throwaway environment of its own (uv resolves the
# lowest releases, pip cannot); by hand when a bound changes, not part of CI (as long as the suite).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet --disable-pip-version-check uv
"$work/tools/bin/uv" venv --quiet --python "$PYTHON" "$work/env"
"$work/tools/bin/uv" pip install --quiet --python "$work/env/bin/python" --resolution lowest-direct \
  -e ".[test,pandas,charts,chdb,clickhouse]"
"$work/tools/bin/uv" pip list --python "$work/env/bin/python"
# Older releases warn of what newer ones renamed, which the suite otherwise takes as errors.
"$work/env/bin/python" -m pytest -p no:cacheprovider \
  -W ignore::DeprecationWarning -W ignore::PendingDeprecationWarning "$@"
