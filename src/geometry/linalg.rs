//! Small dense linear algebra in f64: a row-major [`Matrix`], vector helpers,
//! a symmetric eigen-decomposition and Gram-Schmidt.
//!
//! The geometry module only ever needs eigenproblems of size C x C (Gram
//! matrices of class means or weights) or small D x D checks, so a plain
//! Householder tridiagonalisation + implicit QL (the EISPACK `tred2`/`tql2`
//! pair, as in the public-domain JAMA library) is enough. The large
//! products of the streaming passes (N x D features against C x D rows) go
//! through [`crate::kernels::gemm`] (the `gemm` crate: packed,
//! runtime-dispatched SIMD kernels, threaded on the rayon pool when the
//! product is large).

use serde::Serialize;

use crate::kernels::gemm::{Layout, gemm};

use super::error::{GeometryError, Result, check_dim};

/// Row-major dense f64 matrix (`rows x cols`).
///
/// Weights are `C x D` (one class per row), features `N x D`, covariances
/// `D x D`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// Wraps row-major `data` of length `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        check_dim("matrix data length", rows * cols, data.len())?;
        Ok(Self { rows, cols, data })
    }

    /// Converts row-major f32 data (e.g. features or weights read from a
    /// network) to an f64 matrix.
    pub fn from_f32(rows: usize, cols: usize, data: &[f32]) -> Result<Self> {
        check_dim("matrix data length", rows * cols, data.len())?;
        Ok(Self {
            rows,
            cols,
            data: data.iter().map(|&v| f64::from(v)).collect(),
        })
    }

    /// Builds a matrix from equally long rows.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            check_dim("row length", cols, row.len())?;
            data.extend_from_slice(row);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// Matrix with entries `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Self { rows, cols, data }
    }

    /// All-zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// `n x n` identity.
    pub fn identity(n: usize) -> Self {
        Self::from_fn(n, n, |i, j| if i == j { 1.0 } else { 0.0 })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row-major data.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// Mutable row-major data.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// Consumes the matrix, returning its row-major data.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Mutable row `i`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Iterator over rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f64]> {
        // `max(1)` keeps `chunks_exact` valid for zero-column matrices.
        self.data
            .chunks_exact(self.cols.max(1))
            .take(if self.cols == 0 { 0 } else { self.rows })
    }

    /// Entry `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Sets entry `(i, j)`.
    pub fn set(&mut self, i: usize, j: usize, value: f64) {
        self.data[i * self.cols + j] = value;
    }

    /// Transpose.
    pub fn transpose(&self) -> Matrix {
        Matrix::from_fn(self.cols, self.rows, |i, j| self.get(j, i))
    }
}

/// Row-major `lhs (m x k) * rhs^T` where `rhs` is `n x k` row-major: the
/// dot product of every row of `lhs` with every row of `rhs`, as a
/// row-major `m x n` vector. Panics if `lhs` is shorter than `m * k` or
/// `rhs` has not `k` columns (a caller bug, never user input).
pub fn gemm_rows(lhs: &[f64], m: usize, rhs: &Matrix) -> Vec<f64> {
    let (n, k) = (rhs.rows(), rhs.cols());
    gemm(lhs, m, k, rhs.as_slice(), n, Layout::Transposed)
}

impl Matrix {
    /// Product `self * other`.
    pub fn matmul(&self, other: &Matrix) -> Result<Matrix> {
        check_dim("matmul inner dimension", self.cols, other.rows)?;
        let mut out = Matrix::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            let out_row = &mut out.data[i * other.cols..(i + 1) * other.cols];
            for (k, &a) in self.row(i).iter().enumerate() {
                if a != 0.0 {
                    axpy(a, other.row(k), out_row);
                }
            }
        }
        Ok(out)
    }

    /// Gram matrix of the rows, `self * self^T` (`rows x rows`).
    pub fn gram(&self) -> Matrix {
        let n = self.rows;
        let mut g = Matrix::zeros(n, n);
        for i in 0..n {
            for j in i..n {
                let v = dot(self.row(i), self.row(j));
                g.set(i, j, v);
                g.set(j, i, v);
            }
        }
        g
    }

    /// Frobenius norm `sqrt(sum a_ij^2)`.
    pub fn frobenius_norm(&self) -> f64 {
        norm(&self.data)
    }

    /// Trace of a square matrix (sum of the diagonal; uses `min(rows, cols)`).
    pub fn trace(&self) -> f64 {
        (0..self.rows.min(self.cols)).map(|i| self.get(i, i)).sum()
    }

    /// True when every entry is finite.
    pub fn is_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }

    /// Row norms `|row_i|`.
    pub fn row_norms(&self) -> Vec<f64> {
        self.iter_rows().map(norm).collect()
    }

    /// Matrix-vector product `self * v`.
    pub fn mul_vec(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_dim("matrix-vector length", self.cols, v.len())?;
        Ok(self.iter_rows().map(|r| dot(r, v)).collect())
    }
}

/// Squared Euclidean distance `|a - b|^2`, with eight partial sums so the
/// compiler can vectorise it (a plain iterator sum is a chain of dependent
/// additions).
pub fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let mut acc = [0.0f64; 8];
    let chunks = n / 8;
    for k in 0..chunks {
        for l in 0..8 {
            let d = a[8 * k + l] - b[8 * k + l];
            acc[l] += d * d;
        }
    }
    let mut s = acc.iter().sum::<f64>();
    for k in 8 * chunks..n {
        s += (a[k] - b[k]) * (a[k] - b[k]);
    }
    s
}

/// Dot product `a . b` (equal lengths assumed; extra entries are ignored).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four partial sums: lets the compiler vectorise and reduces rounding.
    let mut acc = [0.0f64; 4];
    let chunks = a.len().min(b.len()) / 4;
    for k in 0..chunks {
        for l in 0..4 {
            acc[l] += a[4 * k + l] * b[4 * k + l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for k in 4 * chunks..a.len().min(b.len()) {
        s += a[k] * b[k];
    }
    s
}

/// Euclidean norm `|a|`.
pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `y += alpha * x`.
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `a > b`, false when either is NaN (reads better than `!(a > b)` where
/// NaN must count as "not greater").
pub fn greater(a: f64, b: f64) -> bool {
    a > b
}

/// `a / |a|`, or `None` for a zero (or non-finite) vector.
pub fn normalized(a: &[f64]) -> Option<Vec<f64>> {
    let n = norm(a);
    (n > 0.0 && n.is_finite()).then(|| a.iter().map(|v| v / n).collect())
}

/// Eigen-decomposition of a symmetric matrix: `A = V diag(values) V^T`.
#[derive(Debug, Clone)]
pub struct SymEigen {
    /// Eigenvalues in descending order.
    pub values: Vec<f64>,
    /// Orthonormal eigenvectors as columns, in the order of `values`.
    pub vectors: Matrix,
}

/// Symmetric eigen-decomposition by Householder tridiagonalisation and the
/// implicit QL algorithm (EISPACK `tred2` + `tql2`, as in JAMA). Only the
/// symmetric part `(A + A^T)/2` is used. Cost O(n^3); meant for C x C Gram
/// matrices.
pub fn sym_eigen(a: &Matrix) -> Result<SymEigen> {
    check_dim("symmetric matrix columns", a.rows(), a.cols())?;
    if !a.is_finite() {
        return Err(GeometryError::NonFinite {
            what: "symmetric matrix",
        });
    }
    let n = a.rows();
    if n == 0 {
        return Ok(SymEigen {
            values: vec![],
            vectors: Matrix::zeros(0, 0),
        });
    }
    let mut v = Matrix::from_fn(n, n, |i, j| 0.5 * (a.get(i, j) + a.get(j, i)));
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    tred2(&mut v, &mut d, &mut e);
    tql2(&mut v, &mut d, &mut e);
    // Sort descending.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| d[j].total_cmp(&d[i]));
    let values = order.iter().map(|&i| d[i]).collect();
    let vectors = Matrix::from_fn(n, n, |r, k| v.get(r, order[k]));
    Ok(SymEigen { values, vectors })
}

/// Householder reduction to tridiagonal form (EISPACK tred2).
// Index loops mirror the published algorithm line by line.
#[allow(clippy::needless_range_loop)]
fn tred2(v: &mut Matrix, d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    for j in 0..n {
        d[j] = v.get(n - 1, j);
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for dk in d.iter().take(i) {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v.get(i - 1, j);
                v.set(i, j, 0.0);
                v.set(j, i, 0.0);
            }
        } else {
            for dk in d.iter_mut().take(i) {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in e.iter_mut().take(i) {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v.set(j, i, f);
                g = e[j] + v.get(j, j) * f;
                for k in j + 1..i {
                    g += v.get(k, j) * d[k];
                    e[k] += v.get(k, j) * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    let val = v.get(k, j) - (f * e[k] + g * d[k]);
                    v.set(k, j, val);
                }
                d[j] = v.get(i - 1, j);
                v.set(i, j, 0.0);
            }
        }
        d[i] = h;
    }
    for i in 0..n - 1 {
        v.set(n - 1, i, v.get(i, i));
        v.set(i, i, 1.0);
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v.get(k, i + 1) / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v.get(k, i + 1) * v.get(k, j);
                }
                for k in 0..=i {
                    let val = v.get(k, j) - g * d[k];
                    v.set(k, j, val);
                }
            }
        }
        for k in 0..=i {
            v.set(k, i + 1, 0.0);
        }
    }
    for j in 0..n {
        d[j] = v.get(n - 1, j);
        v.set(n - 1, j, 0.0);
    }
    v.set(n - 1, n - 1, 1.0);
    e[0] = 0.0;
}

/// Implicit QL on the tridiagonal matrix (EISPACK tql2).
#[allow(clippy::needless_range_loop)]
fn tql2(v: &mut Matrix, d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            // Converges in a few iterations; the cap only guards pathological input.
            for _ in 0..64 {
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for k in 0..n {
                        let vk1 = v.get(k, i + 1);
                        let vk = v.get(k, i);
                        v.set(k, i + 1, s * vk + c * vk1);
                        v.set(k, i, c * vk - s * vk1);
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

/// Orthonormalises the columns of `a` (`rows x cols`, `rows >= cols`) by
/// modified Gram-Schmidt with one re-orthogonalisation pass; returns a
/// `rows x cols` matrix with orthonormal columns. Errors with
/// [`GeometryError::RankTooLow`] if a column is (numerically) dependent on
/// the previous ones (relative tolerance `1e-10`).
///
/// Used to turn a caller-supplied random matrix into the orthonormal `P` of a
/// simplex ETF or into a random rotation (no `rand` dependency here).
pub fn gram_schmidt_columns(a: &Matrix) -> Result<Matrix> {
    let (rows, cols) = (a.rows(), a.cols());
    if cols > rows {
        return Err(GeometryError::RankTooLow {
            what: "Gram-Schmidt columns (need rows >= cols)",
            needed: cols,
            got: rows,
        });
    }
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(cols);
    for j in 0..cols {
        let mut v: Vec<f64> = (0..rows).map(|i| a.get(i, j)).collect();
        let original = norm(&v);
        for _ in 0..2 {
            for qk in &q {
                let c = dot(qk, &v);
                axpy(-c, qk, &mut v);
            }
        }
        let n = norm(&v);
        if !greater(n, 1e-10 * original) || !n.is_finite() {
            return Err(GeometryError::RankTooLow {
                what: "Gram-Schmidt columns",
                needed: cols,
                got: j,
            });
        }
        v.iter_mut().for_each(|x| *x /= n);
        q.push(v);
    }
    Ok(Matrix::from_fn(rows, cols, |i, j| q[j][i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::test_rng::lcg;

    #[test]
    fn eigen_reconstructs_random_symmetric() {
        let mut seed = 7;
        for n in [1, 2, 3, 7, 20] {
            let b = Matrix::from_fn(n, n, |_, _| lcg(&mut seed));
            let a = b.matmul(&b.transpose()).unwrap();
            let eig = sym_eigen(&a).unwrap();
            let v = &eig.vectors;
            // V^T V = I
            let vtv = v.transpose().matmul(v).unwrap();
            for i in 0..n {
                for j in 0..n {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((vtv.get(i, j) - want).abs() < 1e-12);
                }
            }
            // A = V L V^T
            for i in 0..n {
                for j in 0..n {
                    let r: f64 = (0..n)
                        .map(|k| v.get(i, k) * eig.values[k] * v.get(j, k))
                        .sum();
                    assert!((r - a.get(i, j)).abs() < 1e-10 * (1.0 + a.get(i, j).abs()));
                }
            }
            assert!(eig.values.windows(2).all(|w| w[0] >= w[1]));
            assert!((eig.values.iter().sum::<f64>() - a.trace()).abs() < 1e-10);
        }
    }

    #[test]
    fn eigen_closed_form_2x2() {
        let a = Matrix::new(2, 2, vec![2.0, 1.0, 1.0, 2.0]).unwrap();
        let eig = sym_eigen(&a).unwrap();
        assert!((eig.values[0] - 3.0).abs() < 1e-14);
        assert!((eig.values[1] - 1.0).abs() < 1e-14);
    }

    #[test]
    fn gram_schmidt_orthonormal_and_rank_check() {
        let mut seed = 3;
        let a = Matrix::from_fn(6, 4, |_, _| lcg(&mut seed));
        let q = gram_schmidt_columns(&a).unwrap();
        let qtq = q.transpose().matmul(&q).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((qtq.get(i, j) - want).abs() < 1e-13);
            }
        }
        let dep = Matrix::new(2, 2, vec![1.0, 2.0, 1.0, 2.0]).unwrap();
        assert!(matches!(
            gram_schmidt_columns(&dep),
            Err(GeometryError::RankTooLow { .. })
        ));
    }
}
