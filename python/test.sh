#!/usr/bin/env bash
# The Python package's tests: build symfeat (the CLI the tests compare
# with), build the wheel with maturin in a virtual environment, install it
# there and run pytest on python/tests. Run from anywhere; CI runs it
# (.ci/run). The environment lives in target/python-venv (reused; delete it
# to start afresh). Needs python3 with venv and pip, and the PyPI registry.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SYMFEAT_VENV:-target/python-venv}
# The CLI as `cargo test --release` builds it (in CI: already built).
cargo test --release --no-run --quiet
if [[ ! -x "$VENV/bin/maturin" || ! -x "$VENV/bin/pytest" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "maturin>=1.5,<2" numpy pytest
fi
rm -rf target/wheels
# --compatibility linux: a wheel for this machine (no manylinux audit);
# share-test-build: reuse the test build's artifacts (python/Cargo.toml).
"$VENV/bin/maturin" build --release --quiet -m python/Cargo.toml -o target/wheels \
    --compatibility linux --features share-test-build
"$VENV/bin/pip" install --quiet --force-reinstall --no-deps target/wheels/symfeat-*.whl
SYMFEAT_BIN="$PWD/target/release/symfeat" "$VENV/bin/pytest" -q python/tests "$@"
