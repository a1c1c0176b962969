"""Shared fixtures: synthetic data, NPY files of it, and the symfeat CLI.

The CLI is the reference the package must agree with: ``SYMFEAT_BIN``, or
the repository's target/release/symfeat (``cargo build --release``). A
missing binary is an error, not a skip: CI builds it first.
"""

import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def symfeat_bin() -> str:
    path = os.environ.get("SYMFEAT_BIN", str(REPO / "target" / "release" / "symfeat"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"the symfeat binary {path} is missing: run `cargo build --release` "
                    "or set SYMFEAT_BIN")
    return path


def cli(symfeat_bin, *args):
    """Run the CLI: (exit code, stdout, stderr)."""
    p = subprocess.run([symfeat_bin, *map(str, args)], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def cli_error(symfeat_bin, *args) -> str:
    """The CLI's error message (exit code 2, 'error: ' stripped)."""
    rc, _, err = cli(symfeat_bin, *args)
    assert rc == 2, (rc, err)
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: "), err
    return line[len("error: "):]


def blobs(n=600, d=16, c=5, seed=0, dtype=np.float32, offset=1.0):
    """Gaussian classes around random centers (with a common offset), and
    class weights near the centers; every class present."""
    rng = np.random.default_rng(seed)
    centers = offset + rng.normal(size=(c, d))
    y = rng.integers(0, c, size=n)
    y[:c] = np.arange(c)
    x = centers[y] + 0.8 * rng.normal(size=(n, d))
    w = centers + 0.3 * rng.normal(size=(c, d))
    return x.astype(dtype), y.astype(np.int64), w.astype(dtype)


def save(tmp_path, **arrays):
    """Write each array as NAME.npy; returns the paths by name."""
    out = {}
    for name, a in arrays.items():
        p = tmp_path / f"{name}.npy"
        np.save(p, a)
        out[name] = p
    return out
