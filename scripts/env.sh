#!/usr/bin/env bash
# Create ./.venv (if needed) and install nerveseg into it, editable, with the extras
# named in $1 (comma-separated, may be empty). Idempotent: a second run is quick.
# Every version comes from the lock in requirements/ (pip's -c constraints): a fresh
# machine gets exactly what CI tested. The runtime install takes runtime.lock; any extra
# takes train-test.lock (a constraint only pins a version, it installs nothing). Refresh
# the locks with ./scripts/lock.sh; try the newest allowed versions with ./scripts/test.sh --latest.
# NERVESEG_VENV names another environment folder (test.sh --latest uses .venv-latest);
# NERVESEG_LOCK=none installs without a lock (the newest versions pyproject allows).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python=${PYTHON:-python3}
venv=${NERVESEG_VENV:-.venv}
lock=${NERVESEG_LOCK:-requirements/train-test.lock}
[ -z "$extras" ] && lock=${NERVESEG_LOCK:-requirements/runtime.lock}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
constraints=()
[ "$lock" != none ] && constraints=(-c "$lock")
stamp="$venv/.nerveseg-installed-${extras:-runtime}"
# Reinstall only when the dependency list or the lock changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ "$lock" != none ] && [ "$lock" -nt "$stamp" ]; }; then
    log=$(mktemp) status=0
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" "${constraints[@]}" \
        >"$log" 2>&1 || status=$?
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
    rm -f "$log"
    # A failed install must stop here, not leave an old environment looking current.
    [ "$status" = 0 ] || { echo "scripts/env.sh: pip install failed (exit $status)" >&2; exit "$status"; }
    "$venv/bin/python" -c "import nerveseg.realtime"
    touch "$stamp"
fi
