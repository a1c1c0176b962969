#!/usr/bin/env bash
# Geometry benchmark: `symfeat analyze` against its numpy peer
# (bench/numpy_geometry.py) on the same synthetic NPY files; prints seconds,
# max RSS, the speed ratio, and whether the two agree.
#
# Usage: bench/geometry_bench.sh [--n 1000000] [--d 512] [--c 100] [--dir /tmp/geobench]
#                                [--seed 0] [--no-stream] [--regen] [--python]
# Env:   SYMFEAT (default target/release/symfeat), PYTHON (default python3).
#
# Data (generated once per n/d/c/seed, reused afterwards; --regen forces it):
#   centers_c = o + randn(D)  (o a common offset, randn(D)), labels uniform
#   over C, X_i = centers_{y_i} + 2 randn(D) (float32, written in chunks
#   with open_memmap), W = centers + 0.3 randn (float32), linear head, no
#   bias. X_q.npy / y_q.npy hold the first N/4 rows for the memory check.
# Runs (each under /usr/bin/time): symfeat at N and N/4 (default mixed-precision
# products, then --precision f64), numpy (mmap reads)
# at N and N/4, and unless --no-stream numpy with --read stream at N and N/4
# (mmap'd file pages count in RSS; stream mode shows the RSS of the numpy
# computation itself). numpy uses OpenBLAS with its default thread count.
# --python: also the Python package (bench/python_analyze.py: symfeat.analyze
# on the features loaded into memory; PYTHON must have it installed) at N and
# N/4, its result checked equal to the CLI's, its time against the CLI and
# numpy, and its peak memory beyond the input arrays.
set -euo pipefail

N=1000000 D=512 C=100 DIR=/tmp/geobench SEED=0 STREAM=1 REGEN=0 PYPKG=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --n) N=$2; shift 2 ;;
        --d) D=$2; shift 2 ;;
        --c) C=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --no-stream) STREAM=0; shift ;;
        --regen) REGEN=1; shift ;;
        --python) PYPKG=1; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
SYMFEAT=${SYMFEAT:-target/release/symfeat}
PYTHON=${PYTHON:-python3}
[[ -x "$SYMFEAT" ]] || { echo "symfeat binary not found: $SYMFEAT (set SYMFEAT)" >&2; exit 1; }
if [[ ! -x /usr/bin/time ]]; then
    echo "/usr/bin/time missing: installing the Debian 'time' package" >&2
    apt-get install -y time >&2 || { echo "install 'time' (apt-get install -y time)" >&2; exit 1; }
fi
mkdir -p "$DIR"
NQ=$((N / 4))

# ---- data (once) ----
TAG="n=$N d=$D c=$C seed=$SEED"
if [[ $REGEN == 1 || ! -f "$DIR/meta.txt" || "$(cat "$DIR/meta.txt")" != "$TAG" ]]; then
    echo "generating $TAG in $DIR" >&2
    rm -f "$DIR/meta.txt"
    "$PYTHON" - "$N" "$D" "$C" "$SEED" "$DIR" <<'EOF'
import sys, time
import numpy as np
from numpy.lib.format import open_memmap
n, d, c, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
nq = n // 4
t0 = time.perf_counter()
rng = np.random.default_rng(seed)
offset = rng.standard_normal(d)
centers = offset + rng.standard_normal((c, d))
w = (centers + 0.3 * rng.standard_normal((c, d))).astype(np.float32)
np.save(f"{out}/W.npy", w)
y = rng.integers(0, c, size=n, dtype=np.int64)
y[:c] = np.arange(c)  # every class present, also in the first quarter
np.save(f"{out}/y.npy", y)
np.save(f"{out}/y_q.npy", y[:nq])
X = open_memmap(f"{out}/X.npy", mode="w+", dtype=np.float32, shape=(n, d))
Xq = open_memmap(f"{out}/X_q.npy", mode="w+", dtype=np.float32, shape=(nq, d))
centers32 = centers.astype(np.float32)
step = max(1, (32 << 20) // (4 * d))
for s in range(0, n, step):
    e = min(n, s + step)
    blk = rng.standard_normal((e - s, d), dtype=np.float32)
    blk *= 2.0
    blk += centers32[y[s:e]]
    X[s:e] = blk
    if s < nq:
        Xq[s:min(e, nq)] = blk[:min(e, nq) - s]
X.flush(); Xq.flush()
del X, Xq
print(f"generated X {n}x{d} float32 ({n*d*4/2**20:.0f} MiB) in {time.perf_counter()-t0:.1f} s",
      file=sys.stderr)
EOF
    echo "$TAG" > "$DIR/meta.txt"
fi

# ---- runs ----
timed() { # timed NAME CMD... : runs under /usr/bin/time, stdout to $DIR/NAME.out
    local name=$1; shift
    echo "running [$name]: $*" >&2
    /usr/bin/time -f '%e %M' -o "$DIR/$name.time" "$@" > "$DIR/$name.out"
}
PY=("$PYTHON" "$HERE/numpy_geometry.py" --quiet)
# Every run reads the files from the page cache: warm it first, so that the
# first tool does not pay the disk for the others (a cold 2 GB read added
# about 2.6 s to whichever ran first).
cat "$DIR/X.npy" "$DIR/X_q.npy" "$DIR/y.npy" "$DIR/y_q.npy" > /dev/null
timed symfeat_n   "$SYMFEAT" analyze --features "$DIR/X.npy"   --labels "$DIR/y.npy"   --weights "$DIR/W.npy" --json "$DIR/symfeat_n.json"
timed symfeat_q   "$SYMFEAT" analyze --features "$DIR/X_q.npy" --labels "$DIR/y_q.npy" --weights "$DIR/W.npy" --json "$DIR/symfeat_q.json"
timed symfeat_f64_n "$SYMFEAT" analyze --precision f64 --features "$DIR/X.npy"   --labels "$DIR/y.npy"   --weights "$DIR/W.npy" --json "$DIR/symfeat_f64_n.json"
timed symfeat_f64_q "$SYMFEAT" analyze --precision f64 --features "$DIR/X_q.npy" --labels "$DIR/y_q.npy" --weights "$DIR/W.npy" --json "$DIR/symfeat_f64_q.json"
timed numpy_n     "${PY[@]}" --features "$DIR/X.npy"   --labels "$DIR/y.npy"   --weights "$DIR/W.npy" --json "$DIR/numpy_n.json"
timed numpy_q     "${PY[@]}" --features "$DIR/X_q.npy" --labels "$DIR/y_q.npy" --weights "$DIR/W.npy" --json "$DIR/numpy_q.json"
RUNS=(symfeat_n symfeat_q symfeat_f64_n symfeat_f64_q numpy_n numpy_q)
if [[ $STREAM == 1 ]]; then
    timed numpy_stream_n "${PY[@]}" --read stream --features "$DIR/X.npy"   --labels "$DIR/y.npy"   --weights "$DIR/W.npy" --json "$DIR/numpy_stream_n.json"
    timed numpy_stream_q "${PY[@]}" --read stream --features "$DIR/X_q.npy" --labels "$DIR/y_q.npy" --weights "$DIR/W.npy" --json "$DIR/numpy_stream_q.json"
    RUNS+=(numpy_stream_n numpy_stream_q)
fi

if [[ $PYPKG == 1 ]]; then
    for q in n q; do
        sfx=$([[ $q == q ]] && echo _q || true)
        timed python_$q "$PYTHON" "$HERE/python_analyze.py" --features "$DIR/X$sfx.npy" \
            --labels "$DIR/y$sfx.npy" --weights "$DIR/W.npy" --json "$DIR/python_$q.json" \
            --timings "$DIR/python_$q.timings.json"
    done
    RUNS+=(python_n python_q)
fi

# ---- table and agreement ----
"$PYTHON" - "$DIR" "$N" "$NQ" "$D" "$C" "${RUNS[@]}" <<'EOF'
import json, sys
out, n, nq, d, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
runs = sys.argv[6:]
t = {}
for r in runs:
    sec, kb = open(f"{out}/{r}.time").read().split()[-2:]
    t[r] = (float(sec), int(kb) / 1024)
print(f"\ngeometry benchmark: N={n} D={d} C={c} (float32 features, linear head)")
print(f"{'tool':<16} {'rows':>9} {'seconds':>9} {'max RSS MiB':>12} {'numpy/symfeat s':>16} {'in-script s':>12}")
for r in runs:
    rows = n if r.endswith("_n") else nq
    base = t["symfeat_" + r[-1]][0]
    ratio = "" if r.startswith("symfeat") else f"{t[r][0] / base:.2f}"
    inner = "" if r.startswith("symfeat") else \
        f"{json.load(open(f'{out}/{r}.json'))['timings']['total_s']:.2f}" if r.startswith("numpy") else \
        f"{json.load(open(f'{out}/{r}.timings.json'))['analyze_s']:.2f}"
    print(f"{r[:-2]:<16} {rows:>9} {t[r][0]:>9.2f} {t[r][1]:>12.1f} {ratio:>16} {inner:>12}")
print("(seconds, RSS: /usr/bin/time of the whole process; in-script s: numpy's two passes and\n"
      " metrics without interpreter start-up and imports, python's symfeat.analyze call alone;\n"
      " symfeat: default mixed-precision products, symfeat_f64: --precision f64)")
for tool in ("symfeat", "symfeat_f64"):
    print(f"speed ratio numpy / {tool} at N: {t['numpy_n'][0] / t[tool + '_n'][0]:.2f}x")
if "python_n" in t:
    py = {q: json.load(open(f"{out}/python_{q}.timings.json")) for q in "nq"}
    npin = json.load(open(f"{out}/numpy_n.json"))["timings"]["total_s"]
    print(f"python package at N: symfeat.analyze {py['n']['analyze_s']:.2f} s on the array in memory; "
          f"numpy's passes {npin:.2f} s: {npin / py['n']['analyze_s']:.2f}x; "
          f"the CLI's whole process {t['symfeat_n'][0]:.2f} s: python/CLI "
          f"{py['n']['analyze_s'] / t['symfeat_n'][0]:.2f}")
    for q, rows in (("n", n), ("q", nq)):
        print(f"python package at {rows} rows: input {py[q]['input_mib']:.0f} MiB, resident once "
              f"loaded {py[q]['rss_input_mib']:.0f} MiB, peak beyond it during the call "
              f"{py[q]['peak_beyond_input_mib']:.1f} MiB")
for tool in sorted({r[:-2] for r in runs}):
    q, f = t[tool + "_q"][1], t[tool + "_n"][1]
    print(f"RSS {tool}: N/4 {q:.1f} MiB -> N {f:.1f} MiB (x{f / q:.2f} for x4 rows)")

def get(j, key):
    v = j
    for k in key.split("."):
        v = v[k]
    return v

keys = ["nc.nc1", "nc.nc3", "nc.nc4", "mean_angle_w_mean_deg"]
info = ["max_angle_w_mean_deg", "separation_deg", "compactness_mean_deg",
        "nc.nc2_equinorm_means", "nc.nc2_equinorm_weights", "nc.nc2_equiangularity"]
bad = 0
for suffix, rows in (("_n", n), ("_q", nq)):
    sf = json.load(open(f"{out}/symfeat{suffix}.json"))
    for r in [x for x in runs if x.startswith("numpy") and x.endswith(suffix)]:
        npj = json.load(open(f"{out}/{r}.json"))
        print(f"\nagreement symfeat vs {r[:-2]} at {rows} rows (rel. tol 1e-3):")
        for key in keys + info:
            a, b = get(sf, key), get(npj, key)
            ok = abs(a - b) <= 1e-3 * max(abs(a), abs(b)) or a == b
            extra = f"  ({round(abs(a - b) * rows)} samples)" if key == "nc.nc4" else ""
            tag = ("OK" if ok else "DIFF") if key in keys else ("ok" if ok else "diff")
            print(f"  {tag:<4} {key:<28} symfeat {a:.10g}  numpy {b:.10g}{extra}")
            bad += key in keys and not ok
        per = max(abs(x["angle_w_mean_deg"] - y["angle_w_mean_deg"])
                  for x, y in zip(sf["classes"], npj["classes"]))
        print(f"       max |per-class angle_w_mean_deg diff| {per:.3g} deg")
for suffix, rows in (("_n", n), ("_q", nq)):
    a = json.load(open(f"{out}/symfeat{suffix}.json"))
    b = json.load(open(f"{out}/symfeat_f64{suffix}.json"))
    rel = abs(a["nc"]["nc1"] - b["nc"]["nc1"]) / abs(b["nc"]["nc1"])
    same = a["nc"]["nc4"] == b["nc"]["nc4"] and \
        [c["compactness_deg"] for c in a["classes"]] == [c["compactness_deg"] for c in b["classes"]]
    print(f"\nmixed vs f64 products at {rows} rows: NC1 rel. diff {rel:.2e}, "
          f"NC4 and compactness {'identical' if same else 'DIFFERENT'}, "
          f"{a['second_pass']['rechecked_f64']} samples' decisions recomputed in f64")
    bad += not same
for suffix, rows in (("_n", n), ("_q", nq)):
    if f"python{suffix}" in t:
        same = json.load(open(f"{out}/python{suffix}.json")) == json.load(open(f"{out}/symfeat{suffix}.json"))
        print(f"python package vs CLI at {rows} rows: {'identical JSON' if same else 'DIFFERENT JSON'}")
        bad += not same
print("\nall checked quantities agree" if bad == 0 else f"\n{bad} DIFF(s)")
sys.exit(1 if bad else 0)
EOF
