#!/usr/bin/env bash
# The whole test suite on a fresh machine: make the environment (training stack
# included, every version from requirements/train-test.lock), then run pytest.
# Extra arguments go to pytest.
#   ./scripts/test.sh --latest [pytest args]  the same suite in a separate environment
#       (.venv-latest) on the newest versions pyproject allows, after a report of every
#       version that differs from the lock: how to see what a lock refresh would change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
if [ "${1:-}" = --latest ]; then
    shift
    venv=.venv-latest
    export NERVESEG_VENV=$venv NERVESEG_LOCK=none
    ./scripts/env.sh train,test
    # Pick up releases made since the environment was first built.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade --upgrade-strategy eager \
        -e '.[train,test]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
    "$venv/bin/python" scripts/lock_diff.py requirements/train-test.lock
else
    ./scripts/env.sh train,test
fi
export QT_QPA_PLATFORM=offscreen
exec "$venv/bin/python" -m pytest "$@"
