//! The wrappers around the `gemm` crate (packed, runtime-dispatched
//! AVX2/AVX-512 kernels; burn-flex uses the same crate): f64 products of
//! the geometry passes and the f32 products of the CPU convolution
//! ([`super::sgemm`]). `gemm_strides` is the one `unsafe` call into the
//! crate. No burn here: `geometry` (pure f64 math) uses these too.

/// How `gemm`'s right factor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `k x n` row-major.
    Plain,
    /// `n x k` row-major (the product uses its transpose).
    Transposed,
}

/// `lhs (m x k, row-major) * B` with `B` given by `rhs` in `layout`, as a
/// row-major `m x n` vector. Threaded on the rayon pool above about 2M
/// multiply-adds. Panics on short slices (a caller bug).
pub fn gemm(lhs: &[f64], m: usize, k: usize, rhs: &[f64], n: usize, layout: Layout) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    gemm_into(&mut out, lhs, m, k, rhs, n, layout);
    out
}

/// Element types [`gemm_into`] takes (f64, and f32 where single precision
/// is the point, such as reproducing a network's own predictions).
pub trait GemmScalar: Copy + Send + Sync + 'static {
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
}

impl GemmScalar for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl GemmScalar for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// [`gemm`] into `out` (length `m * n`, overwritten), so that streaming
/// callers reuse one buffer; f64 or f32.
pub fn gemm_into<T: GemmScalar>(
    out: &mut [T],
    lhs: &[T],
    m: usize,
    k: usize,
    rhs: &[T],
    n: usize,
    layout: Layout,
) {
    gemm_general(out, lhs, m, k, k, rhs, n, layout, worth_threads(m, n, k));
}

/// [`gemm_into`] with a plain `k x n` right factor and a left factor whose
/// rows are `lhs_rs >= k` values apart (a column block of a wider matrix).
pub fn gemm_strided<T: GemmScalar>(
    out: &mut [T],
    lhs: &[T],
    m: usize,
    k: usize,
    lhs_rs: usize,
    rhs: &[T],
    n: usize,
) {
    gemm_general(
        out,
        lhs,
        m,
        k,
        lhs_rs,
        rhs,
        n,
        Layout::Plain,
        worth_threads(m, n, k),
    );
}

#[allow(clippy::too_many_arguments)]
fn gemm_general<T: GemmScalar>(
    out: &mut [T],
    lhs: &[T],
    m: usize,
    k: usize,
    lhs_rs: usize,
    rhs: &[T],
    n: usize,
    layout: Layout,
    parallel: bool,
) {
    assert!(lhs_rs >= k, "gemm: row stride {lhs_rs} < {k}");
    let lhs_need = if m == 0 { 0 } else { (m - 1) * lhs_rs + k };
    assert!(
        lhs.len() >= lhs_need,
        "gemm: lhs has {} values, need {lhs_need}",
        lhs.len()
    );
    assert!(
        rhs.len() >= k * n,
        "gemm: rhs has {} values, need {}",
        rhs.len(),
        k * n
    );
    assert_eq!(out.len(), m * n, "gemm: output length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(T::ZERO);
        return;
    }
    let rhs_strides = match layout {
        Layout::Plain => (n, 1),
        Layout::Transposed => (1, k),
    };
    gemm_strides(
        out,
        (n, 1),
        false,
        [m, n, k],
        (lhs, (lhs_rs, 1)),
        (rhs, rhs_strides),
        parallel,
    );
}

/// Whether a product of `m n k` multiply-adds is worth the rayon pool
/// (about 2M and up).
fn worth_threads(m: usize, n: usize, k: usize) -> bool {
    m * n * k >= 1 << 21
}

/// The one call into the `gemm` crate: `dst (m x n) = [dst +] lhs (m x k)
/// rhs (k x n)` for `[m, n, k]`, every operand given by its (row stride,
/// column stride), f64 or f32; `accumulate` adds to `dst` instead of
/// overwriting it; on the rayon pool when `parallel`. Panics when a stride
/// reaches outside its slice (a caller bug).
pub fn gemm_strides<T: GemmScalar>(
    dst: &mut [T],
    dst_strides: (usize, usize),
    accumulate: bool,
    [m, n, k]: [usize; 3],
    (lhs, lhs_strides): (&[T], (usize, usize)),
    (rhs, rhs_strides): (&[T], (usize, usize)),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Largest index a (rows x cols) operand reaches with these strides.
    let last = |rows: usize, cols: usize, (rs, cs): (usize, usize)| {
        (rows - 1) * rs + (cols.max(1) - 1) * cs
    };
    assert!(dst.len() > last(m, n, dst_strides), "gemm: dst too short");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_strides.0 + j * dst_strides.1] = T::ZERO;
                }
            }
        }
        return;
    }
    assert!(lhs.len() > last(m, k, lhs_strides), "gemm: lhs too short");
    assert!(rhs.len() > last(k, n, rhs_strides), "gemm: rhs too short");
    let parallelism = if parallel {
        ::gemm::Parallelism::Rayon(0)
    } else {
        ::gemm::Parallelism::None
    };
    // SAFETY: every index the strides reach, (rows-1) rs + (cols-1) cs, is
    // inside its slice (checked above); `dst` is a unique borrow, so it
    // aliases nothing.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.1 as isize,
            dst_strides.0 as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1 as isize,
            lhs_strides.0 as isize,
            rhs.as_ptr(),
            rhs_strides.1 as isize,
            rhs_strides.0 as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}
