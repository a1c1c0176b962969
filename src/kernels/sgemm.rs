//! The f32 product behind symfeat's convolution kernels: `C (+)= A B` with
//! `A` read through any strides and `B` read in place, row by row (any row
//! stride, contiguous columns). Neither operand is packed.
//!
//! Why not the `gemm` crate: it packs both operands on every call, and a
//! convolution calls the product once per image with the same `A` (the
//! weights) and a `B` that was just written (the unfolded image). In
//! isolation, one thread, hot caches, both kernels run near this machine's
//! peak (`gemm` 95-113 GFLOP/s, this tile 105-116; the peak is ~117 per
//! core on this AMD EPYC, Zen 4: one 512-bit FMA per cycle, measured with a
//! register-only loop). Inside the reference CNN's second convolution (2
//! threads, 128 images of 64 x 196 x 800 products) the `gemm` crate's
//! products ran at ~154 GFLOP/s and these at ~204-210.
//!
//! - The AVX-512 tile keeps an `8 x 48` block of `C` in 24 registers; per
//!   step it loads three vectors of one `B` row and broadcasts eight `A`
//!   values (eight scalar loads, packed or not). The last vector of a row
//!   is masked, so `B` and `C` need no padding.
//! - Without AVX-512 (checked once at run time) the product goes to the
//!   `gemm` crate, with the same results up to rounding.
//!
//! Every call is serial and its summation order is fixed (blocks of
//! [`KC`] steps in order), so results do not depend on threads.

use std::sync::OnceLock;

use super::gemm::gemm_strides;

/// Rows of `C` per tile.
const MR: usize = 8;
/// Columns of `C` per tile: three 16-lane vectors.
const NR: usize = 48;
/// Steps of the inner dimension per pass over `C`.
const KC: usize = 512;

/// The left factor `A` (`m x k`): value `(i, s)` at `data[i rs + s cs]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lhs<'a> {
    pub data: &'a [f32],
    pub m: usize,
    pub k: usize,
    pub strides: (usize, usize),
}

/// Whether the AVX-512 tile runs on this machine (checked once).
fn avx512() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The right factor `B` (`k x n`, `k` from the `A` it multiplies): row
/// `s` is `data[s ld .. s ld + n]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rows<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub n: usize,
}

/// `C = A B` (or `C += A B` when `accumulate`): `C` is `m x n` with row
/// stride `ldc` (contiguous columns).
pub(super) fn gemm(c: &mut [f32], ldc: usize, accumulate: bool, a: Lhs, b: Rows) {
    gemm_with(avx512(), c, ldc, accumulate, a, b);
}

/// [`gemm`], through the AVX-512 tile when `fast` (and the machine has
/// it: the tile's safety rests on that check), else the portable path.
fn gemm_with(fast: bool, c: &mut [f32], ldc: usize, accumulate: bool, a: Lhs, b: Rows) {
    let fast = fast && avx512();
    let Rows {
        data: b,
        ld: ldb,
        n,
    } = b;
    let (m, k, (rs, cs)) = (a.m, a.k, a.strides);
    if m == 0 || n == 0 {
        return;
    }
    assert!(m == 1 || ldc >= n, "sgemm: rows of C overlap");
    assert!(c.len() >= (m - 1) * ldc + n, "sgemm: C too short");
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|i| c[i * ldc..][..n].fill(0.0));
        }
        return;
    }
    assert!(k == 1 || ldb >= n, "sgemm: rows of B overlap");
    assert!(b.len() >= (k - 1) * ldb + n, "sgemm: B too short");
    assert!(
        a.data.len() > (m - 1) * rs + (k - 1) * cs,
        "sgemm: A too short"
    );
    if !fast {
        gemm_strides(
            c,
            (ldc, 1),
            accumulate,
            [m, n, k],
            (a.data, a.strides),
            (b, (ldb, 1)),
            false,
        );
        return;
    }
    #[cfg(target_arch = "x86_64")]
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let acc = accumulate || k0 > 0;
        for j0 in (0..n).step_by(NR) {
            let cols = NR.min(n - j0);
            for i0 in (0..m).step_by(MR) {
                let rows = MR.min(m - i0);
                let aa = &a.data[i0 * rs + k0 * cs..];
                let bb = &b[k0 * ldb + j0..];
                let cc = &mut c[i0 * ldc + j0..];
                let t = avx512::Tile {
                    kc,
                    rows,
                    cols,
                    rs,
                    cs,
                    ldb,
                    ldc,
                    accumulate: acc,
                };
                // SAFETY: AVX-512F is present (`fast` implies `avx512()`);
                // the tile reads `A` values
                // `r rs + s cs` (r < rows, s < kc) of `aa`, `kc` rows of `cols`
                // values of `bb` (stride `ldb`) and touches `rows` rows of
                // `cols` values of `cc` (stride `ldc`): inside the slices by
                // the asserts above.
                unsafe {
                    match cols.div_ceil(16) {
                        1 => t.run::<1>(aa, bb, cc),
                        2 => t.run::<2>(aa, bb, cc),
                        _ => t.run::<3>(aa, bb, cc),
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::MR;
    use std::arch::x86_64::*;

    /// One tile `C[rows x cols] (+)= A[rows x kc] B[kc x cols]`,
    /// `rows <= MR`, `cols <= 16 NV`.
    pub(super) struct Tile {
        pub kc: usize,
        pub rows: usize,
        pub cols: usize,
        pub rs: usize,
        pub cs: usize,
        pub ldb: usize,
        pub ldc: usize,
        pub accumulate: bool,
    }

    impl Tile {
        /// # Safety
        /// AVX-512F must be available; `a[r rs + s cs]` (r < rows, s < kc),
        /// `b[s ldb + j]` (s < kc, j < cols) and `c[r ldc + j]` (r < rows,
        /// j < cols) must be in bounds.
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn run<const NV: usize>(&self, a: &[f32], b: &[f32], c: &mut [f32]) {
            let &Tile {
                kc,
                rows,
                cols,
                rs,
                cs,
                ldb,
                ldc,
                accumulate,
            } = self;
            let tail = cols - 16 * (NV - 1);
            let last: __mmask16 = if tail >= 16 {
                0xFFFF
            } else {
                (1u16 << tail) - 1
            };
            let mask = |v: usize| if v + 1 == NV { last } else { 0xFFFF };
            // Rows past `rows` read row 0 (their results are not stored).
            let row = |r: usize| if r < rows { r * rs } else { 0 };
            let offsets: [usize; MR] = std::array::from_fn(row);
            let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
            unsafe {
                let mut acc = [[_mm512_setzero_ps(); NV]; MR];
                if accumulate {
                    for (r, row) in acc.iter_mut().enumerate() {
                        if r < rows {
                            for (v, x) in row.iter_mut().enumerate() {
                                *x = _mm512_maskz_loadu_ps(mask(v), c.add(r * ldc + v * 16));
                            }
                        }
                    }
                }
                for s in 0..kc {
                    let bs = b.add(s * ldb);
                    let mut bv = [_mm512_setzero_ps(); NV];
                    for (v, x) in bv.iter_mut().enumerate() {
                        *x = _mm512_maskz_loadu_ps(mask(v), bs.add(v * 16));
                    }
                    let as_ = a.add(s * cs);
                    for (row, &off) in acc.iter_mut().zip(&offsets) {
                        let ar = _mm512_set1_ps(*as_.add(off));
                        for (x, bx) in row.iter_mut().zip(&bv) {
                            *x = _mm512_fmadd_ps(ar, *bx, *x);
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    if r < rows {
                        for (v, x) in row.iter().enumerate() {
                            _mm512_mask_storeu_ps(c.add(r * ldc + v * 16), mask(v), *x);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::test_rng::lcg;

    fn check(fast: bool, m: usize, k: usize, n: usize, accumulate: bool) {
        let mut seed = (m * 1000 + k * 10 + n) as u64;
        let mut next = || lcg(&mut seed);
        let a: Vec<f32> = (0..m * k).map(|_| next() as f32).collect();
        let (ldb, ldc) = (n + 3, n + 5);
        let b: Vec<f32> = (0..k.max(1) * ldb).map(|_| next() as f32).collect();
        let c0: Vec<f32> = (0..m * ldc).map(|_| next() as f32).collect();
        // The reference: the same product in f64.
        let mut want: Vec<f64> = c0.iter().map(|&v| v as f64).collect();
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|s| a[i * k + s] as f64 * b[s * ldb + j] as f64)
                    .sum();
                want[i * ldc + j] = if accumulate { want[i * ldc + j] + s } else { s };
            }
        }
        let mut got = c0.clone();
        // A read through strides, from A^T's layout.
        let at: Vec<f32> = (0..k * m).map(|t| a[(t % m) * k + t / m]).collect();
        let lhs = Lhs {
            data: &at,
            m,
            k,
            strides: (1, m),
        };
        let rhs = Rows {
            data: &b,
            ld: ldb,
            n,
        };
        gemm_with(fast, &mut got, ldc, accumulate, lhs, rhs);
        for i in 0..m {
            for j in 0..ldc {
                let (g, w) = (got[i * ldc + j] as f64, want[i * ldc + j]);
                if j >= n {
                    assert_eq!(
                        got[i * ldc + j],
                        c0[i * ldc + j],
                        "padding ({i},{j}) touched"
                    );
                } else {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + k as f64),
                        "fast {fast} {m}x{k}x{n} acc {accumulate} ({i},{j}): {g} vs {w}"
                    );
                }
            }
        }
    }

    /// Both paths against an f64 product: full and partial panels and
    /// tiles (1, 2, 3 vectors, masked tails), several `KC` blocks, `k = 0`.
    #[test]
    fn products_match_f64() {
        for fast in [false, true] {
            for &(m, k, n) in &[
                (1, 1, 1),
                (8, 5, 48),
                (13, 7, 17),
                (64, 800, 196),
                (9, 1100, 33),
                (20, 3, 100),
                (3, 0, 5),
            ] {
                for accumulate in [false, true] {
                    check(fast, m, k, n, accumulate);
                }
            }
        }
    }
}
