#!/usr/bin/env bash
# Accuracy parity: symfeat against its PyTorch peer on Fashion-MNIST, reference
# CNN, both heads, seeds 0 and 1, same settings (SGD lr 0.05, momentum 0.9,
# weight decay 5e-4, batch 128, constant LR, 5 epochs); then a summary
# (bench/parity_summary.py): final test accuracy per run, means, difference,
# and whether each symfeat run lies within TOL points of the PyTorch mean.
#
# Env (all optional):
#   EPOCHS=5            epochs per run
#   LIMIT=N             --train-limit N --test-limit N on both sides (quick run)
#   SEEDS="0 1"         seeds
#   HEADS="softmax symmetrical"
#   RUNS=runs/parity    output folder
#   TOL=1.5             tolerance in accuracy points
#   EXTRA="..."         extra arguments for both trainers
#   SYMFEAT_ARGS="..."  extra arguments for symfeat only
#   TORCH_ARGS="..."    extra arguments for torch_train.py only (e.g. --threads 2)
#   SKIP_SYMFEAT=1 / SKIP_TORCH=1   run one side only (the summary reports what exists)
#   SYMFEAT=target/release/symfeat, PYTHON=python3
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SYMFEAT=${SYMFEAT:-target/release/symfeat}
PYTHON=${PYTHON:-python3}
EPOCHS=${EPOCHS:-5}
SEEDS=${SEEDS:-"0 1"}
HEADS=${HEADS:-"softmax symmetrical"}
RUNS=${RUNS:-runs/parity}
TOL=${TOL:-1.5}

COMMON=(--dataset fashion-mnist --net cnn --epochs "$EPOCHS" --lr 0.05 --momentum 0.9
        --weight-decay 5e-4 --batch 128 --schedule const --threads "${THREADS:-2}")
if [[ -n "${LIMIT:-}" ]]; then
    COMMON+=(--train-limit "$LIMIT" --test-limit "$LIMIT")
fi
read -r -a EXTRA_A <<< "${EXTRA:-}"
read -r -a SF_A <<< "${SYMFEAT_ARGS:-}"
read -r -a PT_A <<< "${TORCH_ARGS:-}"

mkdir -p "$RUNS"
for head in $HEADS; do
    for seed in $SEEDS; do
        if [[ -z "${SKIP_SYMFEAT:-}" ]]; then
            out="$RUNS/symfeat-$head-$seed"
            rm -rf "$out"
            echo "== symfeat $head seed $seed" >&2
            "$SYMFEAT" train "${COMMON[@]}" --head "$head" --seed "$seed" --out "$out" \
                "${EXTRA_A[@]}" "${SF_A[@]}"
        fi
        if [[ -z "${SKIP_TORCH:-}" ]]; then
            out="$RUNS/torch-$head-$seed.jsonl"
            rm -f "$out"
            echo "== torch $head seed $seed" >&2
            "$PYTHON" "$HERE/torch_train.py" "${COMMON[@]}" --head "$head" --seed "$seed" --out "$out" \
                "${EXTRA_A[@]}" "${PT_A[@]}"
        fi
    done
done

"$PYTHON" "$HERE/parity_summary.py" --runs "$RUNS" --heads $HEADS --seeds $SEEDS --tol "$TOL"
