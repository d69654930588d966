#!/usr/bin/env bash
# Refresh the version locks in requirements/ from pyproject.toml, with uv's resolver.
#   ./scripts/lock.sh            keep every pinned version, add/drop only what pyproject changed
#   ./scripts/lock.sh --upgrade  move every package to the newest version pyproject allows
# The locks are made for the CI machine's Python (CPython 3.11, Linux x86_64); scripts/env.sh
# installs with them as constraints (-c), so a fresh machine gets the versions CI tested.
# After --upgrade, run ./scripts/test.sh on the new lock before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/env.sh train,test  # uv comes with the test extra
dir=${NERVESEG_LOCK_DIR:-requirements}  # another folder: to compare without touching the locks
compile() {  # OUTPUT [uv pip compile options...]
    local out=$1; shift
    .venv/bin/python -m uv pip compile pyproject.toml --quiet --python .venv/bin/python \
        --custom-compile-command "./scripts/lock.sh" -o "$out" "$@"
}
compile "$dir/train-test.lock" --extra train --extra test "$@"
# The runtime lock is the train-test lock's subset: the same version of every shared package.
compile "$dir/runtime.lock" -c "$dir/train-test.lock"
echo "locks written: $dir/train-test.lock $dir/runtime.lock"
