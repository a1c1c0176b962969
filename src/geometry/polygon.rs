//! Fixed and structured weight layouts: the symmetrical layer's regular
//! polygon (field notes §2), its probability cap `p_max`, the simplex ETF,
//! and the RePoNet orthoplex and d-cube polytopes (field notes §3).
//!
//! Weights are returned as C x D matrices, row c = `w_c`.

use std::f64::consts::PI;

use super::error::{GeometryError, Result};
use super::linalg::{Matrix, axpy, dot, gram_schmidt_columns, greater, norm};

/// Orthonormal plane basis `(n1, n2)` from two vectors, as the symmetrical
/// layer does it (field notes §2): `n1 = v1/|v1|`, `n2` the normalised
/// Gram-Schmidt residual of `v2`. Errors if `v1 = 0` or `v2` is (relative
/// `1e-12`) parallel to `v1`.
pub fn plane_basis(v1: &[f64], v2: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    if v1.len() != v2.len() {
        return Err(GeometryError::DimensionMismatch {
            what: "plane vectors",
            expected: v1.len(),
            got: v2.len(),
        });
    }
    let n1v = norm(v1);
    if !greater(n1v, 0.0) {
        return Err(GeometryError::RankTooLow {
            what: "plane basis (v1 is zero)",
            needed: 2,
            got: 0,
        });
    }
    let n1: Vec<f64> = v1.iter().map(|v| v / n1v).collect();
    let mut u = v2.to_vec();
    for _ in 0..2 {
        let c = dot(&n1, &u);
        axpy(-c, &n1, &mut u);
    }
    let un = norm(&u);
    if !greater(un, 1e-12 * norm(v2)) || un == 0.0 {
        return Err(GeometryError::RankTooLow {
            what: "plane basis (v2 parallel to v1)",
            needed: 2,
            got: 1,
        });
    }
    let n2 = u.iter().map(|v| v / un).collect();
    Ok((n1, n2))
}

/// Regular-polygon weights of the symmetrical layer (field notes §2):
/// `w_k = cos(2 pi k / C) n1 + sin(2 pi k / C) n2`, `k = 0..C-1`, with
/// `(n1, n2) = plane_basis(v1, v2)`. Unit length, coplanar, zero sum (C >= 2).
pub fn polygon_weights(v1: &[f64], v2: &[f64], classes: usize) -> Result<Matrix> {
    let (n1, n2) = plane_basis(v1, v2)?;
    let d = n1.len();
    Ok(Matrix::from_fn(classes, d, |k, j| {
        let t = 2.0 * PI * k as f64 / classes as f64;
        t.cos() * n1[j] + t.sin() * n2[j]
    }))
}

/// Gram matrix of the polygon weights, `P_jk = cos(2 pi (j - k) / C)`.
pub fn polygon_gram(classes: usize) -> Matrix {
    Matrix::from_fn(classes, classes, |j, k| {
        (2.0 * PI * (j as f64 - k as f64) / classes as f64).cos()
    })
}

/// Largest target probability a cosine head with the polygon weights and
/// scale `s` can output (feature on `w_c`; field notes §2):
/// `p_max = e^s / sum_j e^(s cos(2 pi j / C))`, computed as
/// `1 / sum_j e^(s (cos(2 pi j/C) - 1))` (no overflow).
/// C = 10, s = 16: 0.914; C = 100, s = 16: 0.0995.
pub fn p_max(scale: f64, classes: usize) -> f64 {
    let sum: f64 = (0..classes)
        .map(|j| (scale * ((2.0 * PI * j as f64 / classes as f64).cos() - 1.0)).exp())
        .sum();
    1.0 / sum
}

/// Smallest scale `s >= 0` with `p_max(s, C) >= target`, by bisection
/// (relative precision 1e-12). `p_max` rises from `1/C` at `s = 0` towards 1,
/// so a target `<= 1/C` gives 0 and a target `>= 1` (or one not reached
/// below `s = 1e9`) is an error.
pub fn scale_for_p_max(classes: usize, target: f64) -> Result<f64> {
    if classes == 0 {
        return Err(GeometryError::InvalidParameter {
            name: "classes",
            reason: "must be at least 1".into(),
        });
    }
    if !greater(1.0, target) {
        return Err(GeometryError::InvalidParameter {
            name: "target",
            reason: format!("p_max target {target} is unreachable: it must be below 1"),
        });
    }
    if p_max(0.0, classes) >= target {
        return Ok(0.0);
    }
    let mut hi = 1.0;
    while p_max(hi, classes) < target {
        hi *= 2.0;
        if hi > 1e9 {
            return Err(GeometryError::InvalidParameter {
                name: "target",
                reason: format!(
                    "p_max target {target} not reached for C = {classes} below s = 1e9"
                ),
            });
        }
    }
    let mut lo = 0.0;
    while hi - lo > 1e-12 * hi {
        let mid = 0.5 * (lo + hi);
        if p_max(mid, classes) >= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// Simplex equiangular tight frame (field notes §3; Papyan et al. 2020):
/// `M = sqrt(C/(C-1)) P (I - 1 1^T / C)` with `P` (D x C, orthonormal
/// columns) the seeded Gram-Schmidt of the caller-supplied `random` (D x C,
/// e.g. Gaussian draws; needs `D >= C` and full column rank). Returns
/// `W = M^T` (C x D): unit rows, pairwise cosine `-1/(C-1)`, zero sum.
pub fn simplex_etf(classes: usize, random: &Matrix) -> Result<Matrix> {
    if classes < 2 {
        return Err(GeometryError::InvalidParameter {
            name: "classes",
            reason: "simplex ETF needs C >= 2".into(),
        });
    }
    if random.cols() != classes {
        return Err(GeometryError::DimensionMismatch {
            what: "random matrix columns (C)",
            expected: classes,
            got: random.cols(),
        });
    }
    let p = gram_schmidt_columns(random)?;
    let d = p.rows();
    let c = classes as f64;
    let factor = (c / (c - 1.0)).sqrt();
    let mean: Vec<f64> = (0..d)
        .map(|i| (0..classes).map(|k| p.get(i, k)).sum::<f64>() / c)
        .collect();
    Ok(Matrix::from_fn(classes, d, |k, i| {
        factor * (p.get(i, k) - mean[i])
    }))
}

/// Axes the orthoplex of `classes` vertices uses: `ceil(C/2)`.
pub fn orthoplex_axes(classes: usize) -> usize {
    classes.div_ceil(2)
}

/// Axes the d-cube of `classes` vertices uses: `ceil(log2 C)` (0 for C <= 1).
pub fn dcube_axes(classes: usize) -> usize {
    classes.next_power_of_two().trailing_zeros() as usize
}

/// Orthoplex (cross-polytope) weights of RePoNet: with `m = ceil(C/2)`,
/// `w_{2i} = e_i` and `w_{2i+1} = -e_i` for `i < m` (first `m` coordinates
/// of R^D, `e_i` the unit basis). Needs `D >= ceil(C/2)`. Unit rows;
/// zero sum for even C.
pub fn orthoplex_weights(classes: usize, dim: usize) -> Result<Matrix> {
    let m = orthoplex_axes(classes);
    if dim < m {
        return Err(GeometryError::InvalidParameter {
            name: "dim",
            reason: format!("orthoplex for C = {classes} needs D >= {m}, got {dim}"),
        });
    }
    Ok(Matrix::from_fn(classes, dim, |k, j| {
        if j == k / 2 {
            if k % 2 == 0 { 1.0 } else { -1.0 }
        } else {
            0.0
        }
    }))
}

/// d-cube (hypercube) weights of RePoNet: with `m = ceil(log2 C)`, class `k`
/// gets `w_k[i] = (+1 if bit i of k is set else -1) / sqrt(m)` for `i < m`
/// (first `m` coordinates), 0 elsewhere. Needs `C >= 2` and `D >= m`. Unit
/// rows; the first C vertices of `{-1, 1}^m / sqrt(m)`.
pub fn dcube_weights(classes: usize, dim: usize) -> Result<Matrix> {
    if classes < 2 {
        return Err(GeometryError::InvalidParameter {
            name: "classes",
            reason: "d-cube needs C >= 2".into(),
        });
    }
    let m = dcube_axes(classes);
    if dim < m {
        return Err(GeometryError::InvalidParameter {
            name: "dim",
            reason: format!("d-cube for C = {classes} needs D >= {m}, got {dim}"),
        });
    }
    let v = 1.0 / (m as f64).sqrt();
    Ok(Matrix::from_fn(classes, dim, |k, i| {
        if i >= m {
            0.0
        } else if (k >> i) & 1 == 1 {
            v
        } else {
            -v
        }
    }))
}

/// Moves a layout that lives on the first `k` axes (orthoplex, d-cube) onto
/// the orthonormal columns `P` of `random` (`D x k`, Gram-Schmidt):
/// `w_c <- P w_c[..k]`. Norms and every pairwise cosine are unchanged; the
/// weights no longer sit on coordinate axes, which a ReLU can switch off
/// for every sample (see the README's head-zoo findings).
pub fn embed_in_random_basis(weights: &Matrix, random: &Matrix) -> Result<Matrix> {
    let (c, d, k) = (weights.rows(), weights.cols(), random.cols());
    if random.rows() != d {
        return Err(GeometryError::DimensionMismatch {
            what: "random matrix rows (D)",
            expected: d,
            got: random.rows(),
        });
    }
    if let Some(r) = (0..c).find(|&r| weights.row(r)[k.min(d)..].iter().any(|&v| v != 0.0)) {
        return Err(GeometryError::InvalidParameter {
            name: "weights",
            reason: format!("row {r} has weight beyond the first {k} axes"),
        });
    }
    let p = gram_schmidt_columns(random)?;
    Ok(Matrix::from_fn(c, d, |r, i| {
        (0..k).map(|j| p.get(i, j) * weights.get(r, j)).sum()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::collapse::pairwise_cosines;

    #[test]
    fn p_max_values_from_field_notes() {
        assert!(
            (p_max(16.0, 10) - 0.914).abs() < 5e-4,
            "{}",
            p_max(16.0, 10)
        );
        assert!(
            (p_max(16.0, 100) - 0.0995).abs() < 5e-5,
            "{}",
            p_max(16.0, 100)
        );
        // Cross-entropy floors 0.090 and 2.31.
        assert!((-p_max(16.0, 10).ln() - 0.090).abs() < 5e-4);
        assert!((-p_max(16.0, 100).ln() - 2.31).abs() < 5e-3);
        assert!((p_max(0.0, 7) - 1.0 / 7.0).abs() < 1e-15);
        // Direct formula e^s / sum e^(s cos).
        let s: f64 = 3.0;
        let direct = s.exp()
            / (0..5)
                .map(|j| (s * (2.0 * PI * j as f64 / 5.0).cos()).exp())
                .sum::<f64>();
        assert!((p_max(s, 5) - direct).abs() < 1e-15);
    }

    #[test]
    fn scale_for_p_max_inverts() {
        let s = scale_for_p_max(10, p_max(16.0, 10)).unwrap();
        assert!((s - 16.0).abs() < 1e-8, "{s}");
        let s = scale_for_p_max(100, 0.9).unwrap();
        assert!(
            p_max(s, 100) >= 0.9 && p_max(s * (1.0 - 1e-9), 100) < 0.9,
            "{s}"
        );
        assert_eq!(scale_for_p_max(10, 0.05).unwrap(), 0.0);
        assert!(scale_for_p_max(10, 1.0).is_err());
        assert!(scale_for_p_max(0, 0.5).is_err());
    }

    #[test]
    fn polygon_layout() {
        let w = polygon_weights(&[2.0, 0.0, 0.0], &[1.0, 1.0, 0.0], 4).unwrap();
        let expect = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]];
        for (k, e) in expect.iter().enumerate() {
            assert!((w.get(k, 0) - e[0]).abs() < 1e-15 && (w.get(k, 1) - e[1]).abs() < 1e-15);
            assert_eq!(w.get(k, 2), 0.0);
        }
        let g = w.gram();
        let p = polygon_gram(4);
        for (a, b) in g.as_slice().iter().zip(p.as_slice()) {
            assert!((a - b).abs() < 1e-15);
        }
        assert!((polygon_gram(10).get(0, 1) - 0.809017).abs() < 1e-6);
        assert!(polygon_weights(&[1.0, 0.0], &[2.0, 0.0], 3).is_err());
    }

    #[test]
    fn simplex_etf_cosines() {
        let mut s = 1u64;
        let random = Matrix::from_fn(12, 7, |_, _| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        });
        let w = simplex_etf(7, &random).unwrap();
        for n in w.row_norms() {
            assert!((n - 1.0).abs() < 1e-14);
        }
        for c in pairwise_cosines(&w).unwrap() {
            assert!((c + 1.0 / 6.0).abs() < 1e-14, "{c}");
        }
        assert!(simplex_etf(7, &Matrix::zeros(12, 6)).is_err());
        assert!(simplex_etf(7, &Matrix::zeros(5, 7)).is_err());
    }

    #[test]
    fn polytopes() {
        let o = orthoplex_weights(5, 4).unwrap();
        assert_eq!(o.row(0), &[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(o.row(1), &[-1.0, 0.0, 0.0, 0.0]);
        assert_eq!(o.row(4), &[0.0, 0.0, 1.0, 0.0]);
        assert!(orthoplex_weights(5, 2).is_err());
        let q = dcube_weights(10, 5).unwrap(); // m = 4
        let h = 0.5;
        assert_eq!(q.row(0), &[-h, -h, -h, -h, 0.0]);
        assert_eq!(q.row(9), &[h, -h, -h, h, 0.0]);
        for n in q.row_norms() {
            assert!((n - 1.0).abs() < 1e-15);
        }
        assert!(dcube_weights(10, 3).is_err());
        assert_eq!(dcube_weights(2, 1).unwrap().as_slice(), &[-1.0, 1.0]);
    }

    #[test]
    fn embedding_in_a_random_basis_keeps_the_gram_matrix_and_leaves_the_axes() {
        let o = dcube_weights(10, 6).unwrap(); // first 4 axes
        // Pseudo-random entries (full column rank).
        let r = Matrix::from_fn(6, 4, |i, j| {
            ((((i * 4 + j) as f64 + 1.0) * 12.9898).sin() * 43758.5453).fract()
        });
        let e = embed_in_random_basis(&o, &r).unwrap();
        let (g0, g1) = (pairwise_cosines(&o).unwrap(), pairwise_cosines(&e).unwrap());
        for (a, b) in g0.as_slice().iter().zip(g1.as_slice()) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        for n in e.row_norms() {
            assert!((n - 1.0).abs() < 1e-12);
        }
        // No coordinate is zero for every class any more (a ReLU could only
        // silence the layout by silencing all of its directions).
        for j in 0..6 {
            assert!((0..10).any(|c| e.get(c, j).abs() > 1e-6), "axis {j} unused");
        }
        assert!(embed_in_random_basis(&o, &Matrix::zeros(5, 4)).is_err());
        assert!(embed_in_random_basis(&o, &Matrix::from_fn(6, 3, |i, j| (i + j) as f64)).is_err());
    }
}
