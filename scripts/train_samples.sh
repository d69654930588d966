#!/usr/bin/env bash
# Recipe for the shipped samples: engines samples/models/{gate,unet,gate_seg}.onnx (+ .pt references),
# their RECIPE.md and the sample video samples/stereo_sample.mp4:
# synthetic data → train gate and U-Net at 224 px on the CPU → evaluate on the test split
# (checkpoint and ONNX) → export with metadata and parity checks → benchmark → RECIPE.md.
#
#   scripts/train_samples.sh [WORK]        (default WORK=runs/samples; measured 18 min on 2 shared cores)
#
# Environment: THREADS (torch/ORT threads, default 2), NERVESEG (the command, default
# .venv/bin/nerveseg); for a quick plumbing check only, MODELS, SIZE, PER_CLASS, COUNT,
# GATE_EPOCHS, SEG_EPOCHS, GATE_SEG_HEAD_EPOCHS, GATE_SEG_EPOCHS and WIDTH override the recipe's values.
# INIT=DIR fine-tunes the gate and the U-Net from DIR/gate.onnx and DIR/unet.onnx (their .pt
# beside them; `nerveseg train --init`) instead of starting from scratch, at LR (default 2e-3).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/samples}
THREADS=${THREADS:-2}
NS=${NERVESEG:-.venv/bin/nerveseg}
PY=${PYTHON:-.venv/bin/python}
MODELS=${MODELS:-samples/models}
SIZE=${SIZE:-224}
PER_CLASS=${PER_CLASS:-200}
COUNT=${COUNT:-400}
WIDTH=${WIDTH:-0.5}
# The synthetic world (training/synth/scene.py DOMAINS): the first engines were trained in
# "classic"; DOMAIN=wide trains in the wide world calibrated on real frames (issue 15), and
# DOMAIN=mixed in the wide world with a quarter of classic items (docs/TRAINING.md, "The
# synthetic world"). The sample video stays in VIDEO_DOMAIN (default classic).
DOMAIN=${DOMAIN:-classic}
VIDEO_DOMAIN=${VIDEO_DOMAIN:-classic}
LR=${LR:-2e-3}
# The data's seed (the segmentation set takes DATA_SEED+1). A fine-tune (INIT) must not be tested
# on images its starting engines learned from: engines that record them (extra.seen, training/seen.py)
# keep them in train by themselves; for engines made before that record, draw new images
# (the shipped engines of 2026-12-07 use DATA_SEED=21: their starts learned from seeds 1 and 2).
DATA_SEED=${DATA_SEED:-1}
# Batch 8, not 16: from scratch on a CPU budget, more optimiser steps per image matter more.
GATE=(--width "$WIDTH" --epochs "${GATE_EPOCHS:-12}" --lr "$LR" --batch-size 8 --seed 0)
SEG=(--width "$WIDTH" --epochs "${SEG_EPOCHS:-12}" --lr "$LR" --batch-size 8 --seed 0)
if [ -n "${INIT:-}" ]; then
    GATE+=(--init "$INIT/gate.onnx"); SEG+=(--init "$INIT/unet.onnx")
fi

BUILD="$WORK/models"  # engines, curves, RECIPE.md and the video are made here (ignored), published at the end
# Every engine records the commit it was trained and exported from, and `nerveseg export`
# refuses uncommitted changes: say so now, not after 15 minutes of training. Nothing below
# touches a tracked file before the last step, so the tree stays as clean as it starts.
if [ -z "${ALLOW_DIRTY:-}" ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "train_samples.sh: the checkout has uncommitted changes; commit first (or ALLOW_DIRTY=1 to mark the engines dirty)" >&2
    exit 2
fi
DIRTY=(); [ -n "${ALLOW_DIRTY:-}" ] && DIRTY=(--allow-dirty)
mkdir -p "$WORK" "$BUILD" "$MODELS"
: > "$WORK/commands.txt"
: > "$WORK/timings.txt"

step() {  # step NAME COMMAND...: run, log the command, time it
    local name=$1; shift
    echo "$*" >> "$WORK/commands.txt"
    echo "== $name: $*"
    local started=$SECONDS
    "$@"
    echo "$name $((SECONDS - started))" >> "$WORK/timings.txt"
}

step synth_classify $NS synth classify "$WORK/data/classify" --per-class "$PER_CLASS" --size "$SIZE" --seed "$DATA_SEED" --domain "$DOMAIN" --no-progress
step synth_segment $NS synth segment "$WORK/data/segment" --count "$COUNT" --size "$SIZE" --negatives 0.1 --seed "$((DATA_SEED + 1))" --domain "$DOMAIN" --no-progress
step train_gate $NS train gate "$WORK/data/classify" --out "$WORK/gate" --size "$SIZE" --threads "$THREADS" "${GATE[@]}"
step train_seg $NS train seg "$WORK/data/segment" --out "$WORK/seg" --size "$SIZE" --threads "$THREADS" "${SEG[@]}"
step eval_gate $NS eval gate "$WORK/gate/best.pt" --data "$WORK/data/classify" --out "$WORK/gate/eval_test" --threads "$THREADS"
step eval_seg $NS eval seg "$WORK/seg/best.pt" --data "$WORK/data/segment" --out "$WORK/seg/eval_test" --threads "$THREADS"
# The weights-only .pt references run the naive PyTorch loop of `nerveseg bench`.
# The gates carry their calibration: temperature and unfamiliar-view thresholds fitted on the
# validation split (docs/VALIDATION.md), so a view unlike anything trained on gets no label.
step export_gate $NS export "$WORK/gate/best.pt" --out "$BUILD"/gate.onnx --metrics "$WORK/gate/eval_test/metrics.json" \
    --reference-pt "$BUILD"/gate.pt --calibrate "${DIRTY[@]}"
step export_seg $NS export "$WORK/seg/best.pt" --out "$BUILD"/unet.onnx --metrics "$WORK/seg/eval_test/metrics.json" \
    --reference-pt "$BUILD"/unet.pt "${DIRTY[@]}"
step eval_gate_onnx $NS eval gate "$BUILD"/gate.onnx --data "$WORK/data/classify" --splits "$WORK/gate/splits" \
    --out "$WORK/gate/eval_onnx" --backend onnxruntime --threads "$THREADS"
step eval_seg_onnx $NS eval seg "$BUILD"/unet.onnx --data "$WORK/data/segment" --splits "$WORK/seg/splits" \
    --out "$WORK/seg/eval_onnx" --backend onnxruntime --threads "$THREADS"
# The single engine (gate and mask in one forward), from the trained U-Net on the same splits:
# class head alone, then everything jointly at a tenth of the rate (docs/MODELS.md).
step train_gate_seg $NS train gate-seg --gate-data "$WORK/data/classify" --seg-data "$WORK/data/segment" \
    --gate-splits "$WORK/gate/splits" --seg-splits "$WORK/seg/splits" --init-seg "$WORK/seg/best.pt" \
    --out "$WORK/gate_seg" --head-epochs "${GATE_SEG_HEAD_EPOCHS:-5}" --epochs "${GATE_SEG_EPOCHS:-10}" --threads "$THREADS"
step export_gate_seg $NS export "$WORK/gate_seg/best.pt" --out "$BUILD"/gate_seg.onnx \
    --metrics "$WORK/gate_seg/eval_test/metrics.json" --reference-pt "$BUILD"/gate_seg.pt --calibrate "${DIRTY[@]}"
cp "$WORK/gate/curves.png" "$BUILD"/gate_curves.png
cp "$WORK/seg/curves.png" "$BUILD"/unet_curves.png
# The shipped sample video (6 s side-by-side stereo, 1080p, with per-frame ground truth).
step sample_video $NS synth video "$WORK/stereo_sample.mp4" --seconds 6 --fps 30 --seed 0 --domain "$VIDEO_DOMAIN"
step recipe_md $PY -m nerveseg.training.recipe "$WORK" --models "$BUILD"
publish() {  # the only step that writes tracked files: engines, curves, RECIPE.md, the sample video
    local video=${SAMPLE_VIDEO:-samples/stereo_sample.mp4}
    cp "$BUILD"/*.onnx "$BUILD"/*.pt "$BUILD"/*.png "$BUILD"/RECIPE.md "$MODELS"/
    cp "$WORK/stereo_sample.mp4" "$video"
    rm -rf "${video%.mp4}.gt" && cp -r "$WORK/stereo_sample.gt" "${video%.mp4}.gt"
}
step publish publish
