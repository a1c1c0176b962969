#!/usr/bin/env python3
"""Summary of bench/parity.sh: per head, the final test accuracy of each run
(symfeat: RUNS/symfeat-HEAD-SEED/metrics.jsonl, PyTorch:
RUNS/torch-HEAD-SEED.jsonl; the last JSON line with test_acc counts), the
PyTorch and symfeat means, their difference in points, and whether each
symfeat run lies within TOL points of the PyTorch mean.

Accuracies are fractions in [0, 1]; a value above 1 is taken as a percentage.
Exit status: 0 when every symfeat run that exists is within tolerance and
both sides have runs for every head, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def final_acc(path: str):
    if not os.path.isfile(path):
        return None
    acc = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "test_acc" in rec:
                acc = float(rec["test_acc"])
    if acc is not None and acc > 1.0:
        acc /= 100.0
    return acc


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def pts(x):
    return "  -  " if x is None else f"{100 * x:6.2f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/parity")
    p.add_argument("--heads", nargs="+", default=["softmax", "symmetrical"])
    p.add_argument("--seeds", nargs="+", default=["0", "1"])
    p.add_argument("--tol", type=float, default=1.5, help="tolerance in accuracy points")
    a = p.parse_args(argv)

    ok = True
    for head in a.heads:
        print(f"head {head}")
        print(f"  {'seed':>4}  {'torch %':>7}  {'symfeat %':>9}  within {a.tol} pts of torch mean")
        torch_accs, sf_accs, rows = [], [], []
        for seed in a.seeds:
            t = final_acc(os.path.join(a.runs, f"torch-{head}-{seed}.jsonl"))
            s = final_acc(os.path.join(a.runs, f"symfeat-{head}-{seed}", "metrics.jsonl"))
            rows.append((seed, t, s))
            if t is not None:
                torch_accs.append(t)
            if s is not None:
                sf_accs.append(s)
        tm, sm = mean(torch_accs), mean(sf_accs)
        for seed, t, s in rows:
            if s is None or tm is None:
                verdict = "n/a"
            else:
                within = abs(100 * (s - tm)) <= a.tol
                verdict = "yes" if within else "NO"
                ok &= within
            print(f"  {seed:>4}  {pts(t):>7}  {pts(s):>9}  {verdict}")
        diff = None if tm is None or sm is None else 100 * (sm - tm)
        if tm is None or sm is None:
            ok = False
        print(f"  torch mean {pts(tm).strip()}  symfeat mean {pts(sm).strip()}  "
              f"difference {'n/a' if diff is None else f'{diff:+.2f}'} pts (symfeat - torch)")
    print("parity: " + ("PASS" if ok else "FAIL (or incomplete)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
