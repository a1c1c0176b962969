//! Neural-collapse metrics NC1-NC4 (Papyan, Han, Donoho, PNAS 2020; field
//! notes §4) and the paper's symmetry conditions on a weight matrix
//! (Kansizoglou et al., TNNLS 2022; field notes §1-2).
//!
//! Conventions: weights `W` are C x D (row c is `w_c`); centred means are
//! given as the C x D matrix whose row c is `m_c = mu_c - mu_G`, i.e. `M^T`
//! for Papyan's D x C matrix `M`.

use serde::{Deserialize, Serialize};

use super::angles::angle_rad;
use super::error::{GeometryError, Result, check_dim};
use super::linalg::{Matrix, dot, greater, norm, sym_eigen};
use super::polygon::polygon_gram;
use super::stats::ClassStats;

/// Default relative eigenvalue tolerance of the rank-aware pseudo-inverse in
/// [`nc1_from`]: eigenvalues of `G = M^T M` (equivalently of `Sigma_B`, which
/// has the same non-zero spectrum up to the factor 1/C) at or below
/// `max(D, C) * f64::EPSILON * lambda_max` are treated as zero. This is the
/// default cut-off of `numpy.linalg.pinv` / `scipy.linalg.pinv` applied to
/// `Sigma_B`.
pub fn default_rel_tol(dim: usize, classes: usize) -> f64 {
    dim.max(classes) as f64 * f64::EPSILON
}

/// NC1 = `Tr(Sigma_W Sigma_B^+) / C` from one-pass statistics (default
/// tolerance, see [`nc1_from`]).
pub fn nc1(stats: &ClassStats) -> Result<f64> {
    nc1_from(&stats.within_class_cov()?, &stats.centered_means()?, None)
}

/// NC1 = `Tr(Sigma_W Sigma_B^+) / C` (Papyan et al. 2020, field notes §4),
/// with `Sigma_B = M M^T / C`, `M` the D x C matrix of centred means
/// (passed as its C x D transpose `centered_means`).
///
/// Computed in the C x C space: with `G = M^T M = V L V^T`,
/// `(M M^T)^+ = M V L^-2 V^T M^T`, so
/// `NC1 = Tr(Sigma_W (M M^T)^+) = sum_k v_k^T (M^T Sigma_W M) v_k / l_k^2`
/// over the eigenvalues `l_k > rel_tol * l_max` (rank-aware; default
/// [`default_rel_tol`]). Cost O(C D^2 + C^3). Collapsed features
/// (`Sigma_W = 0`) give exactly 0. Errors with `RankTooLow` if all centred
/// means vanish.
pub fn nc1_from(sigma_w: &Matrix, centered_means: &Matrix, rel_tol: Option<f64>) -> Result<f64> {
    let (c, d) = (centered_means.rows(), centered_means.cols());
    check_dim("Sigma_W rows", d, sigma_w.rows())?;
    check_dim("Sigma_W cols", d, sigma_w.cols())?;
    let tol = rel_tol.unwrap_or_else(|| default_rel_tol(d, c));
    let g = centered_means.gram();
    let eig = sym_eigen(&g)?;
    let l_max = eig.values.first().copied().unwrap_or(0.0);
    let kept: Vec<usize> = (0..c).filter(|&k| eig.values[k] > tol * l_max).collect();
    if !greater(l_max, 0.0) || kept.is_empty() {
        return Err(GeometryError::RankTooLow {
            what: "between-class covariance (all centred class means are zero)",
            needed: 1,
            got: 0,
        });
    }
    // Y = M^T Sigma_W (C x D), A = Y M (C x C).
    let y = centered_means.matmul(sigma_w)?;
    let a = y.matmul(&centered_means.transpose())?;
    let mut total = 0.0;
    for &k in &kept {
        let v: Vec<f64> = (0..c).map(|i| eig.vectors.get(i, k)).collect();
        let av = a.mul_vec(&v)?;
        total += dot(&v, &av) / (eig.values[k] * eig.values[k]);
    }
    Ok(total)
}

/// Equinorm: coefficient of variation `std_c(|v_c|) / mean_c(|v_c|)` of the
/// row norms (population std; field notes §4, NC2). 0 when all rows have the
/// same length.
pub fn equinorm(rows: &Matrix) -> f64 {
    let norms = rows.row_norms();
    let (mean, std) = mean_std(&norms);
    std / mean
}

/// Cosines `cos(v_j, v_k)` of all pairs `j < k` of rows.
pub fn pairwise_cosines(rows: &Matrix) -> Result<Vec<f64>> {
    let c = rows.rows();
    if c < 2 {
        return Err(GeometryError::RankTooLow {
            what: "pairwise cosines (number of rows)",
            needed: 2,
            got: c,
        });
    }
    let norms = rows.row_norms();
    if norms.iter().any(|&n| !greater(n, 0.0)) {
        return Err(GeometryError::RankTooLow {
            what: "pairwise cosines (zero row)",
            needed: 1,
            got: 0,
        });
    }
    let mut out = Vec::with_capacity(c * (c - 1) / 2);
    for j in 0..c {
        for k in j + 1..c {
            out.push((dot(rows.row(j), rows.row(k)) / (norms[j] * norms[k])).clamp(-1.0, 1.0));
        }
    }
    Ok(out)
}

/// Equiangularity: population std of the pairwise cosines over `j < k`
/// (NC2, Papyan et al.).
pub fn equiangularity(rows: &Matrix) -> Result<f64> {
    Ok(mean_std(&pairwise_cosines(rows)?).1)
}

/// Mean over `j < k` of `|cos(v_j, v_k) + 1/(C-1)|`: distance from the
/// simplex-ETF angle (NC2 "max-equiangularity", Papyan et al.).
pub fn mean_abs_cos_plus(rows: &Matrix) -> Result<f64> {
    let c = rows.rows() as f64;
    let cos = pairwise_cosines(rows)?;
    Ok(cos.iter().map(|x| (x + 1.0 / (c - 1.0)).abs()).sum::<f64>() / cos.len() as f64)
}

/// Largest deviation, in degrees, of a pairwise angle from the simplex-ETF
/// angle: `max_{j<k} |angle(v_j, v_k) - acos(-1/(C-1))|`.
pub fn max_angle_deviation_deg(rows: &Matrix) -> Result<f64> {
    let c = rows.rows();
    pairwise_cosines(rows)?; // validates
    let etf = (-1.0 / (c as f64 - 1.0)).acos();
    let mut worst: f64 = 0.0;
    for j in 0..c {
        for k in j + 1..c {
            worst = worst.max((angle_rad(rows.row(j), rows.row(k)) - etf).abs());
        }
    }
    Ok(worst.to_degrees())
}

/// Error of the cosine Gram matrix of the rows against the regular-polygon
/// Gram `P_jk = cos(2 pi (j - k) / C)` (field notes §2, §4): the Frobenius
/// norm `|G^ - P|_F` over all C x C entries, `G^_jk = cos(v_j, v_k)`
/// (absolute, not normalised; the diagonal contributes 0). Class k is
/// expected at angle `2 pi k / C`; the rotation sense does not matter.
pub fn polygon_gram_error(rows: &Matrix) -> Result<f64> {
    let c = rows.rows();
    let norms = rows.row_norms();
    if norms.iter().any(|&n| !greater(n, 0.0)) {
        return Err(GeometryError::RankTooLow {
            what: "polygon Gram (zero row)",
            needed: 1,
            got: 0,
        });
    }
    let p = polygon_gram(c);
    let mut sq = 0.0;
    for j in 0..c {
        for k in 0..c {
            let cos = if j == k {
                1.0
            } else {
                dot(rows.row(j), rows.row(k)) / (norms[j] * norms[k])
            };
            sq += (cos - p.get(j, k)).powi(2);
        }
    }
    Ok(sq.sqrt())
}

/// NC3 (self-duality) = `|W / |W|_F - M^T / |M|_F|_F` with rows of `W`
/// against rows of the centred means (Papyan et al.; field notes §4). 0 when
/// every `w_c` is a common positive multiple of `m_c`; at most 2.
pub fn nc3(weights: &Matrix, centered_means: &Matrix) -> Result<f64> {
    check_dim("NC3 rows (classes)", weights.rows(), centered_means.rows())?;
    check_dim(
        "NC3 cols (feature dim)",
        weights.cols(),
        centered_means.cols(),
    )?;
    let (nw, nm) = (weights.frobenius_norm(), centered_means.frobenius_norm());
    if !(nw > 0.0 && nm > 0.0) {
        return Err(GeometryError::RankTooLow {
            what: "NC3 (zero weights or zero centred means)",
            needed: 1,
            got: 0,
        });
    }
    let sq: f64 = weights
        .as_slice()
        .iter()
        .zip(centered_means.as_slice())
        .map(|(w, m)| (w / nw - m / nm).powi(2))
        .sum();
    Ok(sq.sqrt())
}

/// Nearest-class-centre (NCC) classifier: `argmin_c |x - mu_c|` over the rows
/// of `means` (ties: lowest index).
pub fn nearest_mean(means: &Matrix, x: &[f64]) -> usize {
    let mut best = (f64::INFINITY, 0);
    for (c, m) in means.iter_rows().enumerate() {
        let d2 = super::linalg::sq_dist(m, x);
        if d2 < best.0 {
            best = (d2, c);
        }
    }
    best.1
}

/// Streaming NC4: share of samples whose head prediction differs from the
/// nearest-class-mean prediction (Papyan et al.; field notes §4).
#[derive(Debug, Clone, PartialEq)]
pub struct Nc4 {
    means: Matrix,
    total: u64,
    differ: u64,
}

impl Nc4 {
    /// Starts from the class means `mu_c` (C x D rows).
    pub fn new(means: Matrix) -> Self {
        Self {
            means,
            total: 0,
            differ: 0,
        }
    }

    /// Adds one sample `x` with the head's prediction `head_pred`.
    pub fn push(&mut self, x: &[f64], head_pred: usize) -> Result<()> {
        check_dim("NC4 feature length", self.means.cols(), x.len())?;
        let ncc = nearest_mean(&self.means, x);
        self.push_predictions(head_pred, ncc);
        Ok(())
    }

    /// Adds one pair of predictions computed elsewhere.
    pub fn push_predictions(&mut self, head_pred: usize, ncc_pred: usize) {
        self.total += 1;
        if head_pred != ncc_pred {
            self.differ += 1;
        }
    }

    /// Adds another accumulator.
    pub fn merge(&mut self, other: &Nc4) {
        self.total += other.total;
        self.differ += other.differ;
    }

    /// Samples seen.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// NC4 in `[0, 1]` (NaN before any sample).
    pub fn rate(&self) -> f64 {
        self.differ as f64 / self.total as f64
    }
}

/// The paper's symmetry conditions for a weight matrix (field notes §1):
/// unit length, zero sum, coplanar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symmetry {
    /// `max_c ||w_c| - 1|`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub unit_norm_dev: f64,
    /// `|(1/C) sum_c w_c|`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub mean_weight_norm: f64,
    /// Share of the energy `|W|_F^2` outside the top-2 singular directions:
    /// `1 - (s_1^2 + s_2^2) / sum_k s_k^2`, from the eigenvalues of the C x C
    /// Gram `W W^T`. 0 when all `w_c` lie in one plane.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub coplanarity: f64,
}

/// Checks the symmetry conditions of `W` (C x D). Errors if `W` is zero.
pub fn symmetry(weights: &Matrix) -> Result<Symmetry> {
    let c = weights.rows();
    let unit_norm_dev = weights
        .row_norms()
        .iter()
        .map(|n| (n - 1.0).abs())
        .fold(0.0, f64::max);
    let mut mean = vec![0.0; weights.cols()];
    for row in weights.iter_rows() {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / c as f64;
        }
    }
    let eig = sym_eigen(&weights.gram())?;
    let energy: f64 = eig.values.iter().map(|v| v.max(0.0)).sum();
    if !greater(energy, 0.0) {
        return Err(GeometryError::RankTooLow {
            what: "symmetry (all weights zero)",
            needed: 1,
            got: 0,
        });
    }
    let top2: f64 = eig.values.iter().take(2).map(|v| v.max(0.0)).sum();
    Ok(Symmetry {
        unit_norm_dev,
        mean_weight_norm: norm(&mean),
        coplanarity: (1.0 - top2 / energy).max(0.0),
    })
}

/// Mean and population standard deviation.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::polygon::{polygon_weights, simplex_etf};
    use crate::geometry::test_rng::lcg;

    fn random(rows: usize, cols: usize, seed: u64) -> Matrix {
        let mut s = seed;
        Matrix::from_fn(rows, cols, |_, _| lcg(&mut s))
    }

    /// Direct NC1 through a D x D pseudo-inverse of Sigma_B (eigen route).
    fn nc1_direct(stats: &ClassStats) -> f64 {
        let sw = stats.within_class_cov().unwrap();
        let sb = stats.between_class_cov().unwrap();
        let d = sb.rows();
        let eig = sym_eigen(&sb).unwrap();
        let tol = default_rel_tol(d, stats.classes()) * eig.values[0];
        let mut pinv = Matrix::zeros(d, d);
        for k in 0..d {
            if eig.values[k] > tol {
                for i in 0..d {
                    for j in 0..d {
                        let v = pinv.get(i, j)
                            + eig.vectors.get(i, k) * eig.vectors.get(j, k) / eig.values[k];
                        pinv.set(i, j, v);
                    }
                }
            }
        }
        sw.matmul(&pinv).unwrap().trace() / stats.classes() as f64
    }

    fn noisy_stats(c: usize, d: usize, per: usize, noise: f64, seed: u64) -> ClassStats {
        let centers = random(c, d, seed);
        let mut s = seed + 1;
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for i in 0..c * per {
            let y = i % c;
            labels.push(y);
            for j in 0..d {
                x.push(3.0 * centers.get(y, j) + noise * lcg(&mut s));
            }
        }
        let mut st = ClassStats::new(c, d);
        st.push_batch(&x, &labels).unwrap();
        st
    }

    #[test]
    fn nc1_matches_direct_pinv() {
        // D > C (Sigma_B rank C-1) and D < C (full rank) cases.
        for &(c, d) in &[(4, 7), (6, 3), (5, 5)] {
            let st = noisy_stats(c, d, 30, 0.5, c as u64 * 10 + d as u64);
            let fast = nc1(&st).unwrap();
            let direct = nc1_direct(&st);
            assert!(fast > 0.0);
            assert!(
                (fast - direct).abs() < 1e-9 * direct.max(1.0),
                "{fast} vs {direct}"
            );
        }
    }

    #[test]
    fn nc1_zero_on_collapse_and_rank_aware() {
        // Features equal to scaled polygon weights: collapsed, Sigma_W = 0,
        // Sigma_B has rank 2 in D = 6.
        let w = polygon_weights(
            &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            5,
        )
        .unwrap();
        let mut st = ClassStats::new(5, 6);
        for _ in 0..3 {
            for c in 0..5 {
                let x: Vec<f64> = w.row(c).iter().map(|v| 4.0 * v).collect();
                st.push(&x, c).unwrap();
            }
        }
        assert_eq!(nc1(&st).unwrap(), 0.0);
        // Small noise inside the rank-2 setting stays finite and small.
        let mut noisy = st.clone();
        noisy
            .push(&[4.0 + 1e-3, 0.0, 0.0, 0.0, 0.0, 0.0], 0)
            .unwrap();
        let v = nc1(&noisy).unwrap();
        assert!(v.is_finite() && v < 1e-4, "{v}");
        // All means equal: no between-class spread.
        let mut same = ClassStats::new(2, 2);
        same.push_batch(&[1.0, 1.0, 1.0, 1.0], &[0, 1]).unwrap();
        assert!(matches!(nc1(&same), Err(GeometryError::RankTooLow { .. })));
    }

    #[test]
    fn nc2_nc3_closed_forms() {
        let p = random(8, 5, 4);
        let etf = simplex_etf(5, &p).unwrap();
        assert!(equinorm(&etf) < 1e-14);
        assert!(equiangularity(&etf).unwrap() < 1e-14);
        assert!(mean_abs_cos_plus(&etf).unwrap() < 1e-14);
        assert!(max_angle_deviation_deg(&etf).unwrap() < 1e-9);
        let poly = polygon_weights(&[1.0, 2.0, 0.0], &[0.0, 1.0, 1.0], 10).unwrap();
        assert!(polygon_gram_error(&poly).unwrap() < 1e-13);
        // Polygon is not an ETF for C >= 4: adjacent cosine 0.809.
        assert!(mean_abs_cos_plus(&poly).unwrap() > 0.1);
        assert!(polygon_gram_error(&etf).unwrap() > 0.1);
        // NC3: W = 2 * centred means -> 0; unrelated -> clearly positive.
        let m = random(4, 6, 9);
        let w = Matrix::from_fn(4, 6, |i, j| 2.0 * m.get(i, j));
        assert!(nc3(&w, &m).unwrap() < 1e-15);
        assert!(nc3(&random(4, 6, 10), &m).unwrap() > 0.3);
        let mut scaled = m.clone();
        scaled.row_mut(0).iter_mut().for_each(|v| *v *= 3.0);
        assert!(equinorm(&scaled) > 0.1);
    }

    #[test]
    fn nc4_counts_disagreements() {
        let means = Matrix::new(2, 1, vec![-1.0, 1.0]).unwrap();
        let mut nc4 = Nc4::new(means);
        nc4.push(&[-0.5], 0).unwrap();
        nc4.push(&[0.7], 0).unwrap();
        nc4.push(&[2.0], 1).unwrap();
        nc4.push(&[-3.0], 0).unwrap();
        assert_eq!(nc4.total(), 4);
        assert!((nc4.rate() - 0.25).abs() < 1e-15);
    }

    #[test]
    fn symmetry_polygon_vs_random() {
        let poly = polygon_weights(&[0.3, -1.0, 2.0, 0.5], &[1.0, 1.0, 0.0, -0.2], 7).unwrap();
        let s = symmetry(&poly).unwrap();
        assert!(s.unit_norm_dev < 1e-14, "{s:?}");
        assert!(s.mean_weight_norm < 1e-15, "{s:?}");
        assert!(s.coplanarity < 1e-14, "{s:?}");
        let r = symmetry(&random(7, 4, 2)).unwrap();
        assert!(
            r.unit_norm_dev > 0.05 && r.mean_weight_norm > 0.01 && r.coplanarity > 0.05,
            "{r:?}"
        );
        // Simplex ETF: unit and zero-sum but not coplanar for C >= 4.
        let etf = symmetry(&simplex_etf(6, &random(6, 6, 3)).unwrap()).unwrap();
        assert!(etf.unit_norm_dev < 1e-14 && etf.mean_weight_norm < 1e-15);
        assert!(
            (etf.coplanarity - (1.0 - 2.0 / 5.0)).abs() < 1e-12,
            "{etf:?}"
        );
    }
}
