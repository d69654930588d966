#!/usr/bin/env bash
# Create ./.venv (if needed) and install nerveseg into it, editable, with the extras
# named in $1 (comma-separated, may be empty). Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
stamp=".venv/.nerveseg-installed-${extras:-runtime}"
# Reinstall only when the project's dependency list changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    .venv/bin/python -c "import nerveseg.realtime" 
    touch "$stamp"
fi
