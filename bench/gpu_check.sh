#!/usr/bin/env bash
# The first-GPU check (issue 17), one script, under 8 minutes on an H100-class GPU:
#   1. bench/gpu_check.py: the CUDA paths (fp32, bf16 autocast, bf16 + torch.compile, fused
#      AdamW), `original` at the paper's 100 epochs timed (target ≤ 60 s), `evaluate` on 10,000
#      dev pairs (target ≤ 3 s), GPU memory;
#   2. bench/pretrain_throughput.py: ours (fp32, fast) against the Trainer (target ≥ 5×).
# Both append their figures to bench/RESULTS.md.
#
#   bash bench/gpu_check.sh            # on the GPU machine, in an environment with the project
#   bash bench/gpu_check.sh --smoke    # the same on the CPU at toy sizes (tests run this)
#
# Environment: PYTHON (default .venv/bin/python, else python3), RESULTS (default
# bench/RESULTS.md), DATA (a prepared folder to reuse, or where to prepare; default temporary).
# A GPU machine with PyTorch but not this project's stack (no network): bench/gpu_wheels.sh
# downloads the missing packages here as wheels, and its header has the command to run there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RESULTS=${RESULTS:-bench/RESULTS.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
DATA=${DATA:-$work/prepared}
if [ "${1:-}" = "--smoke" ]; then
    check=(--smoke)
    check_limit=() bench_limit=()  # a shared CPU can be any slower
    throughput=(--device cpu --steps 3 --warmup-steps 1 --rounds 1 --batch-size 16
                --train-sentences 200 --contenders ours-fp32,trainer-gbl)
else
    check=()
    # The whole script stays under 8 minutes, or stops where it ran out of time.
    check_limit=(timeout 360) bench_limit=(timeout 240)
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    throughput=(--device cuda --steps 60 --warmup-steps 20 --rounds 1)
fi
"$PYTHON" -c "import torch, minimult_ml" 2>/dev/null || {
    echo "error: $PYTHON cannot import torch and minimult_ml; install the project" \
         "(make .venv/.installed, or the Docker image) or set PYTHON" >&2; exit 2; }
start=$(date +%s)
"${check_limit[@]}" "$PYTHON" bench/gpu_check.py "${check[@]}" --data "$DATA" --results "$RESULTS"
"${bench_limit[@]}" "$PYTHON" bench/pretrain_throughput.py "${throughput[@]}" --data "$DATA" \
    --markdown "$RESULTS"
echo "gpu_check: done in $(( $(date +%s) - start )) s; figures appended to $RESULTS"
