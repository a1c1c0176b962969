"""symfeat.analyze against the CLI (`symfeat analyze --json`) on the same
data, its in-place reads and its release of the GIL."""

import json
import threading
import time

import numpy as np
import pytest

import symfeat
from conftest import blobs, cli, save


def cli_json(symfeat_bin, tmp_path, x, y, w, bias=None, scale=None, precision="mixed"):
    files = save(tmp_path, x=x, y=y, w=w, **({} if bias is None else {"b": bias}))
    out = tmp_path / "cli.json"
    args = ["analyze", "--features", files["x"], "--labels", files["y"], "--weights",
            files["w"], "--json", out, "--precision", precision]
    if bias is not None:
        args += ["--bias", files["b"]]
    if scale is not None:
        args += ["--scale", scale]
    rc, _, err = cli(symfeat_bin, *args)
    assert rc == 0, err
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", ["linear", "bias", "scale", "float64", "f64-products",
                                  "int32-labels", "long"])
def test_analyze_equals_the_cli_on_the_same_data(symfeat_bin, tmp_path, case):
    n = 20000 if case == "long" else 600  # long: several blocks of rows
    x, y, w = blobs(n=n, dtype=np.float64 if case == "float64" else np.float32)
    kw = {}
    if case == "bias":
        kw["bias"] = np.linspace(-1, 1, w.shape[0]).astype(np.float32)
    if case == "scale":
        kw["scale"] = 16.0
    if case == "f64-products":
        kw["precision"] = "f64"
    if case == "int32-labels":
        y = y.astype(np.int32)
    want = cli_json(symfeat_bin, tmp_path, x, y, w, **kw)
    got = symfeat.analyze(x, y, w, **kw)
    # The same library call on the same blocks: equal, not close.
    assert got == want


def test_the_documented_keys_are_there():
    x, y, w = blobs()
    r = symfeat.analyze(x, y, w)
    assert set(r["nc"]) >= {"nc1", "nc2_equinorm_means", "nc2_equiangularity", "nc3", "nc4"}
    assert len(r["classes"]) == 5
    c3 = r["classes"][3]
    assert c3["class"] == 3 and 0 <= c3["angle_w_softmax_center_deg"] <= 180
    # Weights built near the centers: small angles to the class means.
    assert r["mean_angle_w_mean_deg"] < 30


def test_a_strided_or_fortran_array_gives_the_same_result():
    x, y, w = blobs()
    want = symfeat.analyze(x, y, w)
    assert symfeat.analyze(np.asfortranarray(x), y, w) == want
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), np.float32)
    wide[:, ::2] = x
    assert symfeat.analyze(wide[:, ::2], y, w) == want
    assert symfeat.analyze(x.tolist(), y.tolist(), w.astype(np.float64)) == \
        symfeat.analyze(x.astype(np.float64), y, w.astype(np.float64))
    # Unaligned (a buffer at an odd offset) and big-endian: copied, same result.
    buf = np.zeros(x.nbytes + 1, np.uint8)
    odd = np.frombuffer(buf.data, dtype=np.float32, count=x.size, offset=1).reshape(x.shape)
    odd[...] = x
    assert not odd.flags.aligned
    assert symfeat.analyze(odd, y, w) == want
    assert symfeat.analyze(x.astype(">f4"), y.astype(">i8"), w) == want


PEAK_SCRIPT = """
import sys
import numpy as np, symfeat
sys.path.insert(0, sys.argv[2])
from conftest import blobs
x, y, w = blobs(n=400000, d=128, dtype=np.dtype(sys.argv[1]).type)  # 205 MB as float32

def status(key):  # kB
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))

with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to now
    f.write("5")
base = status("VmRSS")
symfeat.analyze(x, y, w)
print(x.nbytes, max(0, status("VmHWM") - base) * 1024)
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_features_are_read_in_place(dtype):
    # In a fresh process, so that the peak resident memory is this call's:
    # a copy of the features (in numpy or in Rust) would add their size.
    import pathlib
    import subprocess
    import sys
    here = str(pathlib.Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, dtype, here],
                         capture_output=True, text=True, check=True).stdout
    size, beyond = map(int, out.split())
    assert beyond < size / 4, (size, beyond)


def test_the_gil_is_released_during_the_computation():
    x, y, w = blobs(n=400000, d=64, c=20)
    t0 = time.perf_counter()
    symfeat.analyze(x, y, w)
    took = time.perf_counter() - t0
    ticks, result = [], []
    worker = threading.Thread(target=lambda: result.append(symfeat.analyze(x, y, w)))
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    assert len(result) == 1 and result[0]["classes"][0]["class"] == 0
    gaps = np.diff(ticks) if len(ticks) > 1 else np.array([took])
    # Holding the GIL would stall this loop for the whole call.
    assert took > 0.05 and gaps.max() < took / 2, (took, gaps.max(), len(ticks))
