#!/usr/bin/env python3
"""numpy peer of `symfeat analyze` (field notes §4), for benchmarks.

    python3 bench/numpy_geometry.py --features X.npy --labels y.npy \
        --weights W.npy [--bias b.npy] [--scale s] [--json out.json]

Computes, the way a competent numpy user would, the same quantities as
symfeat's geometry report: class means mu_c, global mean mu_G (sample mean),
Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T,
Sigma_B = (1/C) sum_c m_c m_c^T (m_c = mu_c - mu_G), angle(w_c, mu_c),
angle(w_c, m_c), compactness (mean / max angle of samples to mu_c),
separation (min angle between class means), NC1 = Tr(Sigma_W Sigma_B^+)/C
with np.linalg.pinv(Sigma_B, rcond=max(D, C) * eps, hermitian=True) (the
cut-off symfeat uses), NC2 (equinorm of |m_c| and |w_c|, equiangularity =
population std of pairwise cosines, of m_c and of w_c), NC3 =
|W/|W|_F - M/|M|_F|_F and NC4 (share of samples whose head prediction,
argmax W x + b or argmax s cos(x, w_c) with --scale, differs from the
nearest-class-mean prediction).

Not computed: the softmax centre (an iterative per-class search); the JSON
says so under "skipped".

Streaming: the features are opened with np.load(mmap_mode='r') and read in
chunks of rows (default: about 64 MiB of float64 per chunk), converted to
float64. Pass 1 accumulates per-class shifted sums (one-hot GEMM) and the
pooled scatter (Xs.T @ Xs, which numpy sends to BLAS syrk) of rows shifted by
their class's first sample (the same numerically stable shift as symfeat;
no E[x^2] - E[x]^2 cancellation of the class offset). Pass 2 computes
compactness and NC4 on the same chunks. Angles use the stable formula
2 atan2(|a^ - b^|, |a^ + b^|), as symfeat does.

Note on memory: with mmap the file pages touched are counted in the
process's RSS (file-backed, reclaimable), so max RSS grows with the file
size. `--read stream` reads each chunk with readinto() into one reused
buffer instead, which keeps RSS independent of N.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--bias")
    p.add_argument("--scale", type=float)
    p.add_argument("--json")
    p.add_argument("--chunk-rows", type=int, default=0,
                   help="rows per chunk (default: ~64 MiB of float64 per chunk)")
    p.add_argument("--read", choices=["mmap", "stream"], default="mmap",
                   help="mmap: np.load(mmap_mode='r') (default); stream: "
                        "readinto() a reused buffer (RSS independent of N)")
    p.add_argument("--quiet", action="store_true", help="no per-class table")
    return p.parse_args(argv)


class ChunkReader:
    """Row chunks of an N x D .npy matrix, as float64."""

    def __init__(self, path, mode):
        self.path, self.mode = path, mode
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2:
            sys.exit(f"{path}: expected a 2-D array, got shape {arr.shape}")
        if arr.dtype not in (np.float32, np.float64) or not arr.flags.c_contiguous:
            sys.exit(f"{path}: expected C-order float32/float64, got {arr.dtype}")
        self.arr = arr
        self.rows, self.cols = arr.shape
        self.dtype = arr.dtype
        self.offset = arr.offset

    def chunks(self, chunk_rows):
        if self.mode == "mmap":
            for s in range(0, self.rows, chunk_rows):
                yield s, np.asarray(self.arr[s:s + chunk_rows], dtype=np.float64)
            return
        buf = np.empty((chunk_rows, self.cols), dtype=self.dtype)
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self.offset)
            for s in range(0, self.rows, chunk_rows):
                n = min(chunk_rows, self.rows - s)
                view = buf[:n]
                mv = memoryview(view.reshape(-1).view(np.uint8))
                got = 0
                while got < len(mv):
                    k = f.readinto(mv[got:])
                    if not k:
                        sys.exit(f"{self.path}: file is truncated")
                    got += k
                yield s, view.astype(np.float64)


def row_angles_deg(a, b):
    """Angle between row i of a and row i of b (degrees), Kahan's formula."""
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        u, v = a / na, b / nb
        ang = 2.0 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))
    ang[(na[:, 0] == 0) | (nb[:, 0] == 0)] = np.nan
    return np.degrees(ang)


def pairwise_cosines(rows):
    u = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    g = np.clip(u @ u.T, -1.0, 1.0)
    j, k = np.triu_indices(rows.shape[0], 1)
    return g[j, k]


def equinorm(rows):
    n = np.linalg.norm(rows, axis=1)
    return float(n.std() / n.mean())


def main(argv=None):
    args = parse_args(argv)
    t0 = time.perf_counter()
    timings = {}

    W = np.load(args.weights).astype(np.float64)
    if W.ndim != 2:
        sys.exit(f"{args.weights}: expected C x D")
    C, D = W.shape
    b = np.load(args.bias).astype(np.float64).reshape(-1) if args.bias else None
    if b is not None and args.scale is not None:
        sys.exit("--scale (cosine head) and --bias (linear head) exclude each other")
    y_all = np.load(args.labels, mmap_mode="r")
    reader = ChunkReader(args.features, args.read)
    N = reader.rows
    if reader.cols != D:
        sys.exit(f"features D = {reader.cols}, weights D = {D}")
    if y_all.shape != (N,):
        sys.exit(f"labels shape {y_all.shape}, expected ({N},)")
    chunk = args.chunk_rows or max(1024, (64 << 20) // (8 * D))

    # ---- pass 1: counts, shifted class sums, pooled shifted scatter ----
    counts = np.zeros(C, dtype=np.int64)
    shifts = np.zeros((C, D))
    has_shift = np.zeros(C, dtype=bool)
    sums = np.zeros((C, D))          # sum_{i in c} (h_i - s_c)
    scatter = np.zeros((D, D))       # sum_i (h_i - s_{y_i})(h_i - s_{y_i})^T
    norm_sum = 0.0
    for s, X in reader.chunks(chunk):
        y = np.asarray(y_all[s:s + X.shape[0]], dtype=np.int64)
        if y.min() < 0 or y.max() >= C:
            sys.exit(f"label outside 0..{C} in rows {s}..")
        new = np.flatnonzero(~has_shift)
        if new.size:
            # first sample of each class seen for the first time in this chunk
            present, first = np.unique(y, return_index=True)
            sel = ~has_shift[present]
            shifts[present[sel]] = X[first[sel]]
            has_shift[present[sel]] = True
        norm_sum += float(np.linalg.norm(X, axis=1).sum())
        X -= shifts[y]
        onehot = np.zeros((C, X.shape[0]))
        onehot[y, np.arange(X.shape[0])] = 1.0
        sums += onehot @ X
        counts += np.bincount(y, minlength=C)
        scatter += X.T @ X
    if (counts == 0).any():
        sys.exit(f"class {int(np.flatnonzero(counts == 0)[0])} has no sample")
    means = shifts + sums / counts[:, None]
    mu_g = (counts[:, None] * shifts + sums).sum(axis=0) / N
    centered = means - mu_g
    sigma_w = (scatter - (sums / counts[:, None]).T @ sums) / N
    sigma_w = 0.5 * (sigma_w + sigma_w.T)
    sigma_b = centered.T @ centered / C
    timings["pass1_s"] = time.perf_counter() - t0

    # ---- pass 2: compactness and NC4 ----
    t1 = time.perf_counter()
    mean_unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    mean_sq = (means * means).sum(axis=1)
    if args.scale is not None:
        head_w = W / np.linalg.norm(W, axis=1, keepdims=True)  # argmax s cos = argmax w^ . x
    else:
        head_w = W
    comp_sum = np.zeros(C)
    comp_max = np.zeros(C)
    comp_cnt = np.zeros(C, dtype=np.int64)
    differ = 0
    for s, X in reader.chunks(chunk):
        y = np.asarray(y_all[s:s + X.shape[0]], dtype=np.int64)
        nx = np.linalg.norm(X, axis=1, keepdims=True)
        ok = nx[:, 0] > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            u = X / nx
        v = mean_unit[y]
        ang = np.degrees(2.0 * np.arctan2(np.linalg.norm(u - v, axis=1),
                                          np.linalg.norm(u + v, axis=1)))
        yo, ango = y[ok], ang[ok]
        comp_sum += np.bincount(yo, weights=ango, minlength=C)
        comp_cnt += np.bincount(yo, minlength=C)
        np.maximum.at(comp_max, yo, ango)
        logits = X @ head_w.T
        if b is not None:
            logits += b
        head_pred = logits.argmax(axis=1)
        ncc_pred = (mean_sq - 2.0 * (X @ means.T)).argmin(axis=1)
        differ += int((head_pred != ncc_pred).sum())
    timings["pass2_s"] = time.perf_counter() - t1

    # ---- metrics ----
    t2 = time.perf_counter()
    rcond = max(D, C) * np.finfo(np.float64).eps
    sb_pinv = np.linalg.pinv(sigma_b, rcond=rcond, hermitian=True)
    nc1 = float(np.trace(sigma_w @ sb_pinv) / C)
    to_mean = row_angles_deg(W, means)
    to_centered = row_angles_deg(W, centered)
    cos_m = pairwise_cosines(centered)
    cos_w = pairwise_cosines(W)
    nc3 = float(np.linalg.norm(W / np.linalg.norm(W) - centered / np.linalg.norm(centered)))
    # separation: min angle between class means
    j, k = np.triu_indices(C, 1)
    sep_all = row_angles_deg(means[j], means[k])
    best = int(np.argmin(sep_all))
    timings["metrics_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0

    comp_mean = comp_sum / np.maximum(comp_cnt, 1)
    classes = [
        {
            "class": c,
            "count": int(counts[c]),
            "angle_w_mean_deg": float(to_mean[c]),
            "angle_w_centered_mean_deg": float(to_centered[c]),
            "compactness_deg": float(comp_mean[c]) if comp_cnt[c] else None,
            "compactness_max_deg": float(comp_max[c]),
        }
        for c in range(C)
    ]
    out = {
        "tool": "numpy",
        "head": {"Cosine": {"scale": args.scale}} if args.scale is not None else "Linear",
        "skipped": ["softmax center (angle_w_softmax_center_deg, "
                    "angle_softmax_center_mean_deg, softmax_center_p, "
                    "mean_angle_w_softmax_center_deg): iterative search not implemented"],
        "n": int(N), "d": int(D), "c": int(C),
        "read_mode": args.read, "chunk_rows": int(chunk),
        "classes": classes,
        "mean_angle_w_mean_deg": float(to_mean.mean()),
        "max_angle_w_mean_deg": float(to_mean.max()),
        "nc": {
            "nc1": nc1,
            "nc2_equinorm_means": equinorm(centered),
            "nc2_equinorm_weights": equinorm(W),
            "nc2_equiangularity": float(cos_m.std()),
            "nc2_equiangularity_weights": float(cos_w.std()),
            "nc2_mean_abs_cos_plus": float(np.abs(cos_m + 1.0 / (C - 1)).mean()),
            "nc3": nc3,
            "nc4": differ / N,
        },
        "separation_deg": float(sep_all[best]),
        "separation_pair": [int(j[best]), int(k[best])],
        "compactness_mean_deg": float(comp_sum.sum() / comp_cnt.sum()),
        "mean_feature_norm": norm_sum / N,
        "timings": timings,
    }
    if not args.quiet:
        print(f"{'class':>5} {'count':>8} {'w<mean':>10} {'w<centered':>12} {'compact':>10}")
        for r in classes:
            print(f"{r['class']:>5} {r['count']:>8} {r['angle_w_mean_deg']:>9.2f}° "
                  f"{r['angle_w_centered_mean_deg']:>11.2f}° {r['compactness_deg']:>9.2f}°")
    nc = out["nc"]
    print(f"mean angle(w_c, class mean) {out['mean_angle_w_mean_deg']:.2f}° "
          f"(max {out['max_angle_w_mean_deg']:.2f}°); softmax center: skipped")
    print(f"NC1 {nc['nc1']:.4f}  NC2 equinorm means {nc['nc2_equinorm_means']:.4f} "
          f"weights {nc['nc2_equinorm_weights']:.4f}  equiangularity "
          f"{nc['nc2_equiangularity']:.4f}  NC3 {nc['nc3']:.4f}  NC4 {nc['nc4']:.4f}")
    print(f"separation {out['separation_deg']:.2f}° (classes {out['separation_pair'][0]} "
          f"and {out['separation_pair'][1]}); pass1 {timings['pass1_s']:.2f} s, "
          f"pass2 {timings['pass2_s']:.2f} s, total {timings['total_s']:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
