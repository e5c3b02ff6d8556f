#!/usr/bin/env bash
# Builds and runs pacer-demo on the in-process store (http://127.0.0.1:8000 unless HOST/PORT
# say otherwise). Settings come from the environment; arguments are passed on as flags.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target pacer-demo
exec build/release/apps/pacer-demo/pacer-demo "$@"
