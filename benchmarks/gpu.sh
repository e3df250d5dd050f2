#!/usr/bin/env bash
# The GPU benchmark: wavtune against the stock transformers Trainer on the `base` preset (95M
# parameters) over a long-tailed 1-15 s corpus, the same fixed number of steps on both sides,
# both in bf16 (fp16 where the GPU has no bf16). Writes benchmarks/results/gpu.json: audio-s/s,
# peak GPU memory and the speedup of each side, and the machine (GPU, CPU) that made them.
# Budget: under 10 minutes on one recent GPU (set-up, two trainings of BASE_STEPS steps).
#
#   bash benchmarks/gpu.sh              # on a machine with a CUDA GPU and wavtune installed
#   bash benchmarks/gpu.sh --dry-run    # anywhere: the same pipeline on CPU with a tiny model
#                                       # and 5 steps, to a temporary file (tests run this)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=benchmarks/results/gpu.json
STEPS=${BASE_STEPS:-300}
CLIPS=${BASE_CLIPS:-2000}
if [[ "${1:-}" == "--dry-run" ]]; then
  OUT=${GPU_DRY_RUN_OUT:-$(mktemp -d)/gpu.json}
  echo "dry run: tiny preset, 5 steps on CPU -> $OUT"
  exec python benchmarks/training.py --only base --device cpu --precision no \
    --base-preset tiny --base-steps 5 --base-clips 8 --out "$OUT"
fi
if [[ -n "${1:-}" ]]; then
  echo "usage: bash benchmarks/gpu.sh [--dry-run]" >&2
  exit 2
fi

PRECISION=$(python - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("benchmarks/gpu.sh needs a CUDA GPU (torch.cuda.is_available() is False); "
             "use --dry-run to check the pipeline on CPU")
print("bf16" if torch.cuda.is_bf16_supported() else "fp16")
EOF
)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "base preset, $STEPS steps a side, $CLIPS clips, precision $PRECISION -> $OUT"
timeout 600 python benchmarks/training.py --only base --device cuda --precision "$PRECISION" \
  --base-steps "$STEPS" --base-clips "$CLIPS" --workers 4 --out "$OUT"
