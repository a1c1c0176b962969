#!/usr/bin/env bash
# Speed comparison: `symfeat bench` against its PyTorch peer (bench/torch_bench.py)
# with the same model, batch, steps, threads and device; prints one table.
#
# Usage: bench/compare_speed.sh [--model cnn|resnet20] [--batch 128] [--steps 30]
#                               [--threads 2] [--device cpu|cuda] [--head softmax|symmetrical]
# Env:   SYMFEAT (default target/release/symfeat), PYTHON (default python3).
# --head is passed on only when given (each side then uses its default otherwise:
# softmax for cnn, symmetrical for resnet20).
set -euo pipefail

MODEL=cnn BATCH=128 STEPS=30 THREADS=2 DEVICE=cpu HEAD=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) MODEL=$2; shift 2 ;;
        --batch) BATCH=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --head) HEAD=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
SYMFEAT=${SYMFEAT:-target/release/symfeat}
PYTHON=${PYTHON:-python3}
ARGS=(--model "$MODEL" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" --device "$DEVICE")
[[ -n "$HEAD" ]] && ARGS+=(--head "$HEAD")

value() { # value KEY TEXT -> the number after KEY= (last occurrence)
    printf '%s\n' "$2" | sed -n "s/^$1=\([0-9.eE+-]*\).*/\1/p" | tail -n 1
}

echo "running: $SYMFEAT bench ${ARGS[*]}" >&2
SF_OUT=$("$SYMFEAT" bench "${ARGS[@]}")
# symfeat's `--device libtorch` (cargo feature tch) is the CPU through libtorch:
# its PyTorch peer runs on the CPU.
PT_ARGS=("${ARGS[@]}")
[[ "$DEVICE" == libtorch ]] && PT_ARGS=("${ARGS[@]/#libtorch/cpu}")
echo "running: $PYTHON $HERE/torch_bench.py ${PT_ARGS[*]}" >&2
PT_OUT=$("$PYTHON" "$HERE/torch_bench.py" "${PT_ARGS[@]}")

SF_TRAIN=$(value train_img_s "$SF_OUT"); SF_INFER=$(value infer_img_s "$SF_OUT")
PT_TRAIN=$(value train_img_s "$PT_OUT"); PT_INFER=$(value infer_img_s "$PT_OUT")
for v in SF_TRAIN SF_INFER PT_TRAIN PT_INFER; do
    if [[ -z "${!v}" ]]; then
        echo "could not read $v; symfeat printed:" >&2; printf '%s\n' "$SF_OUT" >&2
        echo "torch printed:" >&2; printf '%s\n' "$PT_OUT" >&2
        exit 1
    fi
done

"$PYTHON" - "$MODEL" "$DEVICE" "$BATCH" "$THREADS" "$SF_TRAIN" "$SF_INFER" "$PT_TRAIN" "$PT_INFER" <<'EOF'
import sys
model, device, batch, threads = sys.argv[1:5]
sf_tr, sf_in, pt_tr, pt_in = map(float, sys.argv[5:9])
ratio = lambda a, b: f"{a / b:.2f}" if b > 0 else "n/a"
head = ["model", "device", "batch", "threads", "symfeat train img/s", "symfeat infer img/s",
        "torch train img/s", "torch infer img/s", "train ratio", "infer ratio"]
row = [model, device, batch, threads, f"{sf_tr:.1f}", f"{sf_in:.1f}", f"{pt_tr:.1f}", f"{pt_in:.1f}",
       ratio(sf_tr, pt_tr), ratio(sf_in, pt_in)]
w = [max(len(h), len(r)) for h, r in zip(head, row)]
print(" | ".join(h.ljust(x) for h, x in zip(head, w)))
print("-+-".join("-" * x for x in w))
print(" | ".join(r.ljust(x) for r, x in zip(row, w)))
print("(ratios are symfeat / torch; > 1 means symfeat is faster)")
EOF
