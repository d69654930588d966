#!/usr/bin/env bash
# The main job on a fresh machine: a runtime-only environment (no torch), then replay
# the shipped stereoscope sample to an annotated AVI and print the FPS report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/env.sh ""
exec .venv/bin/nerveseg replay samples/stereo_sample.mp4 --out runs/demo/stereo_sample_annotated.avi --exist-ok "$@"
