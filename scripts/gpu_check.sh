#!/usr/bin/env bash
# The TensorRT check for a GPU machine, in one go (issue 4). Budget: well under 10 min
# on one H200 with 16 cores.
#
#   1. environment: ./.venv with .[tensorrt,train,test] (or PYTHON=/path/to/python that
#      already has them: offline machines cannot pip install);
#   2. the @gpu tests (tiny 32 px engines: build, cache, parity, INT8, bad engines);
#   3. frames: two short synthetic 1280x720 stereo videos (seed 0 to verify, seed 1 to
#      calibrate; ~1 min of CPU rendering), unless FRAMES=video-or-folder and CALIB=folder;
#   4. FP16 and INT8 engines for each model (default samples/models/{gate,unet}.onnx);
#   5. verify each engine against ONNX Runtime FP32 on the CPU, on the same frames,
#      (plus ONNX Runtime's CUDA provider where onnxruntime-gpu is installed);
#   6. one table: build time, max |Δ logit|, gate agreement, mask IoU, ms/frame, speed-up.
#
# Exits non-zero when a step fails or an FP16 engine misses the thresholds
# (gate agreement >= 0.99, mask IoU >= 0.98). INT8 is reported against the same
# thresholds but does not fail the check: its accuracy is the model's business.
#
# Knobs (environment): MODELS, FRAMES, CALIB, N (frames per verify, 100), OPT_LEVEL
# (builder level, 2: quicker builds than TensorRT's default 3), WORKSPACE (MB, 1024),
# GPU_CHECK_OUT (results folder, runs/gpu_check), SKIP_INSTALL=1, SKIP_PYTEST=1.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=${MODELS:-"samples/models/gate.onnx samples/models/unet.onnx"}
N=${N:-100}
OPT_LEVEL=${OPT_LEVEL:-2}
WORKSPACE=${WORKSPACE:-1024}
RESULTS=${GPU_CHECK_OUT:-runs/gpu_check}
mkdir -p "$RESULTS"
export NERVESEG_ENGINE_CACHE=${NERVESEG_ENGINE_CACHE:-$RESULTS/engine-cache}
export QT_QPA_PLATFORM=offscreen
export ORT_DISABLE_TELEMETRY=${ORT_DISABLE_TELEMETRY:-1}  # as nerveseg itself (docs/RELIABILITY.md)
started=$(date +%s)
step() { echo "== [$(( $(date +%s) - started )) s] $*" >&2; }

# 1. environment ------------------------------------------------------------------------
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ "${SKIP_INSTALL:-0}" = 1 ]; then
    PY=.venv/bin/python
else
    step "installing .[tensorrt,train,test] into ./.venv"
    ./scripts/env.sh tensorrt,train,test
    PY=.venv/bin/python
fi
nerveseg() { "$PY" -m nerveseg.commands.cli "$@"; }
"$PY" - <<'EOF' || { echo "gpu_check: the environment cannot run TensorRT (see above)" >&2; exit 1; }
import sys
from nerveseg.engines.environment import probe
env = probe()
print(f"GPU: {env.gpu.describe() if env.gpu else '-'}; TensorRT {env.tensorrt}; "
      f"cuda-python {env.cuda_python}; ORT providers {', '.join(env.ort_providers)}")
problem = env.tensorrt_problem()
if problem:
    print(f"gpu_check: {problem}", file=sys.stderr)
    sys.exit(1)
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# 2. the @gpu tests -----------------------------------------------------------------------
if [ "${SKIP_PYTEST:-0}" != 1 ]; then
    step "pytest -m gpu"
    "$PY" -m pytest -m gpu tests/test_tensorrt_gpu.py -q -rs -p no:cacheprovider
fi

for model in $MODELS; do
    [ -f "$model" ] || { echo "gpu_check: $model: model not found (set MODELS=...)" >&2; exit 1; }
done

# 3. frames -----------------------------------------------------------------------------------
if [ -z "${FRAMES:-}" ]; then
    step "synthetic verify video (seed 0)"
    FRAMES=$RESULTS/verify.mp4
    seconds=$(( (N + 24) / 25 ))
    nerveseg synth video "$FRAMES" --seconds "$seconds" --fps 25 --video-size 1280x720 --seed 0 --no-progress
fi
if [ -z "${CALIB:-}" ]; then
    step "synthetic calibration frames (seed 1)"
    CALIB=$RESULTS/calib
    nerveseg synth video "$RESULTS/calib.mp4" --seconds 3 --fps 25 --video-size 1280x720 --seed 1 --no-progress
    "$PY" - "$RESULTS/calib.mp4" "$CALIB" <<'EOF'
import sys
from pathlib import Path
import av, cv2
video, folder = sys.argv[1], Path(sys.argv[2])
folder.mkdir(parents=True, exist_ok=True)
with av.open(video) as container:
    for i, frame in enumerate(container.decode(video=0)):
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame.to_ndarray(format="bgr24"))
EOF
fi

# 4 + 5. build and verify ------------------------------------------------------------------------
has_ort_cuda=$("$PY" -c "import onnxruntime as o; print(int('CUDAExecutionProvider' in o.get_available_providers()))")
status=0
for model in $MODELS; do
    stem=$(basename "$model" .onnx)
    for precision in fp16 int8; do
        engine=$RESULTS/$stem.$precision.engine
        flags=(--"$precision" --workspace "$WORKSPACE" --opt-level "$OPT_LEVEL" --out "$engine")
        [ "$precision" = int8 ] && flags+=(--calib-dir "$CALIB" --calib-frames 75)
        step "build $stem $precision"
        nerveseg build-engine "$model" "${flags[@]}" || { status=1; continue; }
        step "verify $stem $precision against ONNX Runtime FP32 (CPU)"
        nerveseg verify "$model" "$engine" --backend-a onnxruntime --frames "$FRAMES" --n "$N" \
            --json "$RESULTS/verify-$stem-$precision.json" \
            || { [ "$precision" = fp16 ] && status=1; true; }
    done
    if [ "$has_ort_cuda" = 1 ]; then
        step "verify $stem: ONNX Runtime CUDA provider"
        nerveseg verify "$model" "$model" --backend-a onnxruntime --backend-b onnxruntime-cuda \
            --frames "$FRAMES" --n "$N" --json "$RESULTS/verify-$stem-ort_cuda.json" || true
    fi
done

# 6. the table --------------------------------------------------------------------------------------
step "summary"
"$PY" - "$RESULTS" <<'EOF' | tee "$RESULTS/table.md"
import json, sys
from pathlib import Path
results = Path(sys.argv[1])
print("| model | engine | build s | max abs Δ | gate agree | mask IoU | ref ms (ORT CPU) | ms p50 | speed-up | verdict |")
print("|---|---|---|---|---|---|---|---|---|---|")
for path in sorted(results.glob("verify-*.json")):
    r = json.loads(path.read_text())
    stem, kind = path.stem.split("-", 1)[1].rsplit("-", 1)
    sidecar = results / f"{stem}.{kind}.engine.json"
    build = json.loads(sidecar.read_text())["tensorrt"]["build"]["seconds"] if sidecar.exists() else "-"
    fmt = lambda v: "-" if v is None else f"{v:.4f}"
    ref, ms = r["ms"]["a"]["p50"], r["ms"]["b"]["p50"]
    diff = max(r["max_abs_diff"].values())
    verdict = "PASS" if r["ok"] else "FAIL: " + "; ".join(r["failures"])
    print(f"| {stem} | {r['b']['backend']} | {build} | {diff:.4g} | {fmt(r['gate_agreement'])} | "
          f"{fmt(r['mask_iou'])} | {ref:.2f} | {ms:.2f} | {ref / ms:.1f}x | {verdict} |")
EOF
step "done (status $status); results in $RESULTS"
exit $status
