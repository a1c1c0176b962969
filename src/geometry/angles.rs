//! Angles between class weights and class centres, intra-class compactness
//! and inter-class separation (field notes §4).
//!
//! All angles use Kahan's formula `angle(a, b) = 2 atan2(|a^ - b^|, |a^ + b^|)`
//! (`x^ = x/|x|`), accurate to rounding for tiny and near-180 degree angles,
//! where `acos` of a cosine loses half the digits.

use serde::Serialize;

use super::error::{GeometryError, Result, check_dim};
use super::linalg::{Matrix, greater, norm};

/// Angle between `a` and `b` in radians, in `[0, pi]`; NaN if either is a
/// zero vector or the lengths differ.
pub fn angle_rad(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    let (na, nb) = (norm(a), norm(b));
    if !(na > 0.0 && nb > 0.0) {
        return f64::NAN;
    }
    let (mut diff, mut sum) = (0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (u, v) = (x / na, y / nb);
        diff += (u - v) * (u - v);
        sum += (u + v) * (u + v);
    }
    2.0 * diff.sqrt().atan2(sum.sqrt())
}

/// [`angle_rad`] of `a` and a unit (or zero: NaN) vector `u`, one pass
/// over `a` less.
fn angle_to_unit(a: &[f64], u: &[f64]) -> f64 {
    let na = norm(a);
    if !greater(na, 0.0) || u.iter().all(|&v| v == 0.0) {
        return f64::NAN;
    }
    let inv = 1.0 / na;
    // Eight partial sums each: the loop vectorises.
    let (mut diff, mut sum) = ([0.0f64; 8], [0.0f64; 8]);
    let split = a.len() / 8 * 8;
    for (ab, ub) in a[..split].chunks_exact(8).zip(u[..split].chunks_exact(8)) {
        for l in 0..8 {
            let w = ab[l] * inv;
            diff[l] += (w - ub[l]) * (w - ub[l]);
            sum[l] += (w + ub[l]) * (w + ub[l]);
        }
    }
    let (mut diff, mut sum) = (diff.iter().sum::<f64>(), sum.iter().sum::<f64>());
    for (x, v) in a[split..].iter().zip(&u[split..]) {
        let w = x * inv;
        diff += (w - v) * (w - v);
        sum += (w + v) * (w + v);
    }
    2.0 * diff.sqrt().atan2(sum.sqrt())
}

/// Angle between `a` and `b` in degrees (see [`angle_rad`]).
pub fn angle_deg(a: &[f64], b: &[f64]) -> f64 {
    angle_rad(a, b).to_degrees()
}

/// Angle in degrees between row `c` of `a` and row `c` of `b`, for each `c`
/// (e.g. `w_c` vs `mu_c`, field notes §4). Both must be C x D.
pub fn row_angles_deg(a: &Matrix, b: &Matrix) -> Result<Vec<f64>> {
    check_dim("row count", a.rows(), b.rows())?;
    check_dim("row length", a.cols(), b.cols())?;
    Ok(a.iter_rows()
        .zip(b.iter_rows())
        .map(|(x, y)| angle_deg(x, y))
        .collect())
}

/// Per-class compactness: angles of samples to their class mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassCompactness {
    /// Samples seen.
    pub count: u64,
    /// Mean angle `(1/n_c) sum_{i in c} angle(h_i, mu_c)` in degrees (NaN if
    /// no samples).
    pub mean_deg: f64,
    /// Max angle of a sample of class c to `mu_c`, degrees.
    pub max_deg: f64,
}

/// Streaming accumulator of intra-class compactness (second pass: needs the
/// class means of a first [`ClassStats`](super::stats::ClassStats) pass).
/// Zero-vector samples (angle undefined) are skipped and counted in
/// [`skipped`](Self::skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct Compactness {
    means: Matrix,
    /// `mu_c / |mu_c|` (zero rows stay zero: their angles are NaN).
    unit: Matrix,
    counts: Vec<u64>,
    sums: Vec<f64>,
    maxes: Vec<f64>,
    skipped: u64,
}

impl Compactness {
    /// Starts from the class means `mu_c` (C x D rows).
    pub fn new(means: Matrix) -> Self {
        let c = means.rows();
        let mut unit = means.clone();
        for r in 0..c {
            let n = norm(unit.row(r));
            let inv = if n > 0.0 { 1.0 / n } else { 0.0 };
            unit.row_mut(r).iter_mut().for_each(|v| *v *= inv);
        }
        Self {
            means,
            unit,
            counts: vec![0; c],
            sums: vec![0.0; c],
            maxes: vec![0.0; c],
            skipped: 0,
        }
    }

    /// The class means `mu_c` it measures against.
    pub fn means(&self) -> &Matrix {
        &self.means
    }

    /// Adds a batch of features (row-major N x D, f32 or f64) with labels.
    pub fn push_batch<T: Copy + Into<f64>>(
        &mut self,
        features: &[T],
        labels: &[usize],
    ) -> Result<()> {
        let rows: Vec<f64> = features.iter().map(|&v| v.into()).collect();
        self.push_rows(&rows, labels)
    }

    /// [`push_batch`](Self::push_batch) for f64 rows, without a copy.
    pub fn push_rows(&mut self, features: &[f64], labels: &[usize]) -> Result<()> {
        let d = self.means.cols();
        let c = self.means.rows();
        check_dim("features length (N * D)", labels.len() * d, features.len())?;
        if let Some(&label) = labels.iter().find(|&&l| l >= c) {
            return Err(GeometryError::LabelOutOfRange { label, classes: c });
        }
        // Angles in parallel (D work each), then a serial fold.
        use rayon::prelude::*;
        let angles: Vec<f64> = labels
            .par_iter()
            .enumerate()
            .with_min_len(1024)
            .map(|(i, &y)| self.angle_deg(&features[i * d..(i + 1) * d], y))
            .collect();
        self.push_angles(features, labels, &angles)
    }

    /// Angle in degrees of `x` (D values) to the mean of class `class < C`
    /// (NaN when `x` or the mean is zero, or `x` is not finite).
    pub fn angle_deg(&self, x: &[f64], class: usize) -> f64 {
        angle_to_unit(x, self.unit.row(class)).to_degrees()
    }

    /// Adds angles computed elsewhere with [`angle_deg`](Self::angle_deg):
    /// `angles[i]` of sample `i` (row `i` of `features`, label `labels[i]`,
    /// both checked by the caller). A NaN angle is a skipped sample (zero
    /// vector or zero mean), or an error when the sample is not finite.
    pub fn push_angles<T: Copy + Into<f64>>(
        &mut self,
        features: &[T],
        labels: &[usize],
        angles: &[f64],
    ) -> Result<()> {
        let d = self.means.cols();
        check_dim("angles", labels.len(), angles.len())?;
        for (i, (&y, &a)) in labels.iter().zip(angles).enumerate() {
            if a.is_nan() {
                if features[i * d..(i + 1) * d]
                    .iter()
                    .any(|&v| !v.into().is_finite())
                {
                    return Err(GeometryError::NonFinite { what: "features" });
                }
                self.skipped += 1;
                continue;
            }
            self.counts[y] += 1;
            self.sums[y] += a;
            self.maxes[y] = self.maxes[y].max(a);
        }
        Ok(())
    }

    /// Adds another accumulator built from the same means.
    pub fn merge(&mut self, other: &Compactness) -> Result<()> {
        check_dim("compactness classes", self.counts.len(), other.counts.len())?;
        for c in 0..self.counts.len() {
            self.counts[c] += other.counts[c];
            self.sums[c] += other.sums[c];
            self.maxes[c] = self.maxes[c].max(other.maxes[c]);
        }
        self.skipped += other.skipped;
        Ok(())
    }

    /// Samples skipped because they (or their class mean) are zero vectors.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Per-class results.
    pub fn per_class(&self) -> Vec<ClassCompactness> {
        (0..self.counts.len())
            .map(|c| ClassCompactness {
                count: self.counts[c],
                mean_deg: if self.counts[c] == 0 {
                    f64::NAN
                } else {
                    self.sums[c] / self.counts[c] as f64
                },
                max_deg: self.maxes[c],
            })
            .collect()
    }

    /// Mean angle of all samples to their class mean, degrees.
    pub fn overall_mean_deg(&self) -> f64 {
        self.sums.iter().sum::<f64>() / self.counts.iter().sum::<u64>() as f64
    }
}

/// Inter-class separation: the smallest angle between two class means.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Separation {
    /// `min_{j<k} angle(mu_j, mu_k)` in degrees.
    pub min_deg: f64,
    /// The pair `(j, k)`, `j < k`, reaching it.
    pub pair: (usize, usize),
}

/// Minimum angle between rows of `vectors` (class means `mu_c`, or centred
/// means `m_c` if the caller prefers) and the pair reaching it (field notes
/// §4). Needs at least two rows, none zero.
pub fn separation(vectors: &Matrix) -> Result<Separation> {
    let c = vectors.rows();
    if c < 2 {
        return Err(GeometryError::RankTooLow {
            what: "separation (number of classes)",
            needed: 2,
            got: c,
        });
    }
    let mut best = Separation {
        min_deg: f64::INFINITY,
        pair: (0, 1),
    };
    for j in 0..c {
        for k in j + 1..c {
            let a = angle_deg(vectors.row(j), vectors.row(k));
            if a.is_nan() {
                return Err(GeometryError::RankTooLow {
                    what: "separation (zero class vector)",
                    needed: 1,
                    got: 0,
                });
            }
            if a < best.min_deg {
                best = Separation {
                    min_deg: a,
                    pair: (j, k),
                };
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_angles() {
        assert!((angle_deg(&[1.0, 0.0], &[0.0, 2.0]) - 90.0).abs() < 1e-12);
        assert!((angle_deg(&[1.0, 0.0], &[-3.0, 0.0]) - 180.0).abs() < 1e-12);
        assert!((angle_deg(&[1.0, 1.0], &[1.0, 0.0]) - 45.0).abs() < 1e-12);
        assert_eq!(angle_deg(&[2.0, 3.0], &[4.0, 6.0]), 0.0);
        // Tiny angles keep full relative precision (acos would give ~1e-6 deg noise).
        let t: f64 = 1e-9;
        let a = angle_rad(&[1.0, 0.0], &[t.cos(), t.sin()]);
        assert!((a - t).abs() < 1e-15, "{a}");
        assert!(angle_deg(&[0.0, 0.0], &[1.0, 0.0]).is_nan());
    }

    #[test]
    fn compactness_and_separation() {
        let means = Matrix::new(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
        let mut comp = Compactness::new(means.clone());
        // Class 0 samples at +-10 degrees, class 1 at 0 and 30 degrees.
        let r = |deg: f64| [deg.to_radians().cos(), deg.to_radians().sin()];
        let mut x = Vec::new();
        for v in [r(10.0), r(-10.0), r(90.0), r(60.0)] {
            x.extend_from_slice(&v);
        }
        comp.push_batch(&x, &[0, 0, 1, 1]).unwrap();
        let pc = comp.per_class();
        assert!((pc[0].mean_deg - 10.0).abs() < 1e-12 && (pc[0].max_deg - 10.0).abs() < 1e-12);
        assert!((pc[1].mean_deg - 15.0).abs() < 1e-12 && (pc[1].max_deg - 30.0).abs() < 1e-12);
        assert!((comp.overall_mean_deg() - 12.5).abs() < 1e-12);
        let three = Matrix::new(3, 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.2]).unwrap();
        let s = separation(&three).unwrap();
        assert_eq!(s.pair, (0, 2));
        assert!((s.min_deg - 0.2f64.atan().to_degrees()).abs() < 1e-12);
        assert!(separation(&Matrix::new(1, 2, vec![1.0, 0.0]).unwrap()).is_err());
    }
}
