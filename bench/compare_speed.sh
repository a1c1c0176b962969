#!/usr/bin/env bash
# Speed comparison: `symfeat bench` against its PyTorch peer (bench/torch_bench.py)
# with the same model, batch, steps, threads and device; prints one table.
#
# Usage: bench/compare_speed.sh [--model cnn|resnet20] [--batch 128] [--steps 30]
#                               [--threads 2] [--device cpu|cuda] [--head softmax|symmetrical]
#                               [--repeat 1]
# --repeat R runs the pair R times, alternating symfeat and torch (so slow
# phases of a shared machine hit both), one row per pair, then the medians.
# Env:   SYMFEAT (default target/release/symfeat), PYTHON (default python3).
# --head is passed on only when given (each side then uses its default otherwise:
# softmax for cnn, symmetrical for resnet20).
set -euo pipefail

MODEL=cnn BATCH=128 STEPS=30 THREADS=2 DEVICE=cpu HEAD= REPEAT=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) MODEL=$2; shift 2 ;;
        --batch) BATCH=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --head) HEAD=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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

# symfeat's `--device libtorch` (cargo feature tch) is the CPU through libtorch:
# its PyTorch peer runs on the CPU.
PT_ARGS=("${ARGS[@]}")
[[ "$DEVICE" == libtorch ]] && PT_ARGS=("${ARGS[@]/#libtorch/cpu}")
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "--repeat: expected a positive integer, got '$REPEAT'" >&2; exit 2; }
FIGURES=()
for ((r = 1; r <= REPEAT; r++)); do
    echo "[$r/$REPEAT] running: $SYMFEAT bench ${ARGS[*]}" >&2
    SF_OUT=$("$SYMFEAT" bench "${ARGS[@]}")
    echo "[$r/$REPEAT] running: $PYTHON $HERE/torch_bench.py ${PT_ARGS[*]}" >&2
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
    FIGURES+=("$SF_TRAIN" "$SF_INFER" "$PT_TRAIN" "$PT_INFER")
done

"$PYTHON" - "$MODEL" "$DEVICE" "$BATCH" "$THREADS" "${FIGURES[@]}" <<'EOF'
import statistics
import sys
model, device, batch, threads = sys.argv[1:5]
figures = list(map(float, sys.argv[5:]))
runs = [figures[i:i + 4] for i in range(0, len(figures), 4)]
ratio = lambda a, b: a / b if b > 0 else float("nan")
head = ["run", "model", "device", "batch", "threads", "symfeat train img/s", "symfeat infer img/s",
        "torch train img/s", "torch infer img/s", "train ratio", "infer ratio"]
def row(name, sf_tr, sf_in, pt_tr, pt_in, r_tr, r_in):
    return [name, model, device, batch, threads, f"{sf_tr:.1f}", f"{sf_in:.1f}", f"{pt_tr:.1f}",
            f"{pt_in:.1f}", f"{r_tr:.2f}", f"{r_in:.2f}"]
rows = [row(str(i + 1), *r, ratio(r[0], r[2]), ratio(r[1], r[3])) for i, r in enumerate(runs)]
if len(runs) > 1:
    med = [statistics.median(col) for col in zip(*runs)]
    rows.append(row("median", *med,
                    statistics.median(ratio(r[0], r[2]) for r in runs),
                    statistics.median(ratio(r[1], r[3]) for r in runs)))
w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
print(" | ".join(h.ljust(x) for h, x in zip(head, w)))
print("-+-".join("-" * x for x in w))
for r in rows:
    print(" | ".join(v.ljust(x) for v, x in zip(r, w)))
print("(ratios are symfeat / torch; > 1 means symfeat is faster"
      + ("; the median ratio is the median of the runs' ratios)" if len(runs) > 1 else ")"))
EOF
