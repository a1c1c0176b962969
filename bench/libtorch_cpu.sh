#!/usr/bin/env bash
# Prepares a CPU libtorch for `cargo build --release --features tch`
# (symfeat's `--device libtorch`: burn's tch backend, torch-sys 0.22, which
# wants libtorch 2.9; the torch 2.15 wheel's headers fail to compile with it).
#
# Usage: bench/libtorch_cpu.sh [DIR]        (default DIR=/tmp/libtorch-2.9.1)
#
# From the Python package registry (pip, no other network): the torch 2.9.1
# wheel (~900 MB, for this Python) and the two small CUDA 12 runtime wheels
# that even libtorch_cpu.so links to (cudart, cupti; never called on the
# CPU). It unpacks the CPU libraries and headers into DIR/libtorch and, in
# place of the wheel's libtorch.so (which pulls in libtorch_cuda.so and the
# whole CUDA stack), writes an empty libtorch.so that links libtorch_cpu.so.
# Then prints the environment for the build and the run.
#
# The simpler route, if 3 GB of downloads are fine: a virtualenv with
# `pip install torch==2.9.1` and LIBTORCH_USE_PYTORCH=1 for the build.
set -euo pipefail

DIR=${1:-/tmp/libtorch-2.9.1}
PYTHON=${PYTHON:-python3}
mkdir -p "$DIR/wheels" "$DIR/unpacked"
"$PYTHON" -m pip download --no-deps -d "$DIR/wheels" \
    torch==2.9.1 nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cupti-cu12==12.8.90 >&2
cd "$DIR/unpacked"
unzip -qo "$DIR"/wheels/torch-2.9.1-*.whl 'torch/lib/*' 'torch/include/*' 'torch/share/*'
for w in "$DIR"/wheels/nvidia_*.whl; do unzip -qo "$w"; done

LT="$DIR/libtorch"
rm -rf "$LT" && mkdir -p "$LT/lib"
ln -s "$DIR/unpacked/torch/include" "$LT/include"
ln -s "$DIR/unpacked/torch/share" "$LT/share"
for f in libc10.so libtorch_cpu.so libgomp.so.1 libshm.so libtorch_global_deps.so; do
    ln -s "$DIR/unpacked/torch/lib/$f" "$LT/lib/$f"
done
cp "$DIR"/unpacked/nvidia/cuda_runtime/lib/libcudart.so.12 "$LT/lib/"
cp "$DIR"/unpacked/nvidia/cuda_cupti/lib/libcupti.so.12 "$LT/lib/"
echo '' > "$DIR/empty.c"
${CC:-cc} -shared -fPIC -o "$LT/lib/libtorch.so" "$DIR/empty.c" \
    -Wl,--no-as-needed -L"$LT/lib" -ltorch_cpu -lc10 -Wl,-rpath,'$ORIGIN'
if LD_LIBRARY_PATH="$LT/lib" ldd "$LT/lib/libtorch_cpu.so" | grep -q "not found"; then
    echo "libtorch_cpu.so still misses libraries:" >&2
    LD_LIBRARY_PATH="$LT/lib" ldd "$LT/lib/libtorch_cpu.so" | grep "not found" >&2
    exit 1
fi
cat <<EOF
# libtorch (CPU) ready in $LT. Build and run with:
export LIBTORCH=$LT LIBTORCH_CXX11_ABI=1 LD_LIBRARY_PATH=$LT/lib
cargo build --release --features tch
target/release/symfeat train --device libtorch
bench/compare_speed.sh --model cnn --threads 2 --device libtorch
EOF
