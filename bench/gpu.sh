#!/usr/bin/env bash
# GPU check in one call (about 5 minutes on one H200): the speed of symfeat
# against PyTorch eager on the same GPU (ResNet-20 with the symmetrical head,
# and the reference CNN, batch 128), then a short real training run on CUDA
# that must learn (softmax; the symmetrical layer's run is reported).
#
# Usage: bench/gpu.sh [--steps 50] [--epochs 3] [--out DIR]
# Env:   SYMFEAT  a symfeat built with `cargo build --release --features cuda`
#                 (default target/release/symfeat)
#        PYTHON   python3 with torch and numpy (default python3)
#        CUDA_PATH  CUDA headers for NVRTC (default /usr/local/cuda)
#        DEVICE   cuda (default), cuda:N, or cpu for a dry run of the script
#        FASHION_MNIST  a Fashion-MNIST directory (the four .gz files, carried
#                 to the GPU machine): when set, `reproduce` is timed on DEVICE
#
# No dataset is needed on the GPU machine: the training run uses a synthetic
# set in CIFAR-10's binary format (10 classes, each a fixed random image plus
# noise), written by this script.
set -euo pipefail
STEPS=50 EPOCHS=3 OUT=${OUT:-/tmp/symfeat-gpu}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --steps) STEPS=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
export SYMFEAT=${SYMFEAT:-target/release/symfeat}
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"

echo "== GPU"
if [[ $DEVICE == cpu ]]; then
    echo "dry run on the CPU (DEVICE=cpu)"
else
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
"$SYMFEAT" --version

echo "== speed: symfeat vs PyTorch eager, batch 128, $STEPS steps"
bash "$HERE/compare_speed.sh" --model resnet20 --batch 128 --steps "$STEPS" --device "${DEVICE%%:*}" --head symmetrical
bash "$HERE/compare_speed.sh" --model cnn --batch 128 --steps "$STEPS" --device "${DEVICE%%:*}"

echo "== training: resnet20 on synthetic CIFAR-10 data, $EPOCHS epochs, $DEVICE"
DATA=$OUT/synthetic-cifar10
"$PYTHON" - "$DATA" <<'EOF'
import os, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
templates = rng.integers(0, 256, size=(10, 3 * 32 * 32)).astype(np.float32)
def batch(path, n):
    labels = rng.integers(0, 10, size=n)
    noise = rng.normal(0.0, 60.0, size=(n, 3 * 32 * 32))
    images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
    records = np.concatenate([labels.astype(np.uint8)[:, None], images], axis=1)
    records.tofile(path)
for i in range(1, 6):
    batch(os.path.join(out, f"data_batch_{i}.bin"), 1000)
batch(os.path.join(out, "test_batch.bin"), 1000)
EOF
# No augmentation: crops and flips of per-pixel random templates are other
# images. softmax must learn (the check; 99 % after one epoch on the CPU); the symmetrical layer is reported (it
# starts slowly on ReLU features, see the README's head-zoo findings).
for head in softmax symmetrical; do
    # The script's own run directory: a second call starts afresh (train
    # refuses to overwrite a run).
    rm -rf "$OUT/run-$head"
    start=$(date +%s)
    "$SYMFEAT" train --dataset cifar10 --data "$DATA" --net resnet20 --head "$head" \
        --epochs "$EPOCHS" --batch 128 --augment false --device "$DEVICE" --out "$OUT/run-$head" | tee "$OUT/train-$head.out"
    echo "training wall time ($head): $(( $(date +%s) - start )) s"
done
# symfeat train's own speed (it reads the loss and the accuracy back to the
# host every step, and runs a second head forward for the accuracy) beside
# bench's train_img_s above (which does neither).
"$PYTHON" - "$OUT"/run-*/metrics.jsonl <<'EOF'
import json, sys
for path in sys.argv[1:]:
    rows = [json.loads(l) for l in open(path)]
    speeds = [r["images_per_s"] for r in rows]
    print(f"{path}: symfeat train img/s per epoch {[round(v) for v in speeds]} (the first includes the kernels' compilation)")
EOF
"$PYTHON" - "$OUT/train-softmax.out" "$OUT/train-symmetrical.out" <<'EOF'
import json, sys
acc = {}
for path in sys.argv[1:]:
    last = [l for l in open(path) if l.startswith("{")][-1]
    acc[path] = json.loads(last)["test_acc"]
    print(f"{path}: final test accuracy {acc[path]:.4f} (chance 0.10)")
softmax = acc[sys.argv[1]]
sys.exit(0 if softmax > 0.5 else f"FAIL: the softmax run did not learn (test accuracy {softmax:.4f})")
EOF
if [[ -n ${FASHION_MNIST:-} ]]; then
    echo "== reproduce (quick protocol) on $DEVICE"
    rm -rf "$OUT/reproduce"
    start=$(date +%s)
    "$SYMFEAT" reproduce --data "$FASHION_MNIST" --device "$DEVICE" --out "$OUT/reproduce" > "$OUT/reproduce.md"
    echo "reproduce wall time: $(( $(date +%s) - start )) s"
    sed -n '/## Decisions/,/## Main table/p' "$OUT/reproduce.md"
fi
echo "GPU check passed"
