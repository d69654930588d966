#!/usr/bin/env bash
# The whole test suite on a fresh machine: make the environment (training stack
# included), then run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/env.sh train,test
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest "$@"
