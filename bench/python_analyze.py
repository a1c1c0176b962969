#!/usr/bin/env python3
"""symfeat.analyze (the Python package) on features held in memory, for
bench/geometry_bench.sh --python.

    python3 bench/python_analyze.py --features X.npy --labels y.npy \
        --weights W.npy --json out.json --timings t.json [--precision mixed|f64]

Loads the features into memory with np.load (a float32 C-contiguous array,
read in place by the package), then times one symfeat.analyze call. Writes
the analysis (the same keys as `symfeat analyze --json`) and the timings:
load_s, analyze_s, rss_input_mib (resident memory once the inputs are
loaded) and peak_beyond_input_mib (the process's peak resident memory during
the call, minus rss_input_mib: what the call itself needed).
"""

import argparse
import json
import resource
import time

import numpy as np

import symfeat


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--precision", default="mixed")
    p.add_argument("--json", required=True)
    p.add_argument("--timings", required=True)
    a = p.parse_args()
    t0 = time.perf_counter()
    x, y, w = np.load(a.features), np.load(a.labels), np.load(a.weights)
    load_s = time.perf_counter() - t0
    assert x.dtype == np.float32 and x.flags.c_contiguous
    base = rss_mib()
    t0 = time.perf_counter()
    res = symfeat.analyze(x, y, w, precision=a.precision)
    analyze_s = time.perf_counter() - t0
    # ru_maxrss (KiB on Linux): the peak, here reached during the call or
    # by the inputs themselves (then the call added nothing beyond them).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(a.json, "w") as f:
        json.dump(res, f)
    with open(a.timings, "w") as f:
        json.dump({"load_s": load_s, "analyze_s": analyze_s, "rss_input_mib": base,
                   "peak_beyond_input_mib": max(0.0, peak - base),
                   "input_mib": (x.nbytes + y.nbytes + w.nbytes) / 2**20}, f)


if __name__ == "__main__":
    main()
