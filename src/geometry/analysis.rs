//! One call from statistics and a weight matrix to the full report of field
//! notes §4: per-class angles to the class centres and to the softmax
//! centre, NC1-NC4, the paper's symmetry conditions and the separation.
//!
//! First pass: [`ClassStats`]. Optional second pass (needs the class means):
//! [`SecondPass`] for compactness and NC4. Then [`analyze`].

use serde::{Deserialize, Serialize};

use super::angles::{Compactness, angle_deg, row_angles_deg, separation};
use super::collapse::{
    Nc4, Symmetry, default_rel_tol, equiangularity, equinorm, max_angle_deviation_deg,
    mean_abs_cos_plus, nc1_from, nc3, polygon_gram_error, symmetry,
};
use super::error::{GeometryError, Result, check_dim};
use super::landscape::{CenterOptions, CosineHead, HeadLogits, LinearHead, argmax, softmax_center};
use super::linalg::{dot, gemm_rows, sym_eigen};
use crate::kernels::gemm::{Layout, gemm, gemm_into, gemm_strided};

use super::linalg::Matrix;
use super::stats::ClassStats;

mod mixed;
pub use mixed::Precision;

/// The form of the head's logits (linear or cosine), which decides its
/// softmax centre. Not `crate::heads::HeadKind`, the named heads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum HeadForm {
    /// `W x + b` (plain softmax).
    Linear,
    /// `s cos(x, w_j)` (NormFace, symmetrical layer, margin heads at test
    /// time).
    Cosine {
        /// The scale s.
        scale: f64,
    },
}

/// Builds the head: cosine with scale `s` when `scale` is given (a bias is
/// then an error), else linear with the optional bias.
pub fn build_head(
    weights: &Matrix,
    bias: Option<&[f64]>,
    scale: Option<f64>,
) -> Result<Box<dyn HeadLogits>> {
    match scale {
        Some(s) => {
            if bias.is_some() {
                return Err(GeometryError::InvalidParameter {
                    name: "bias",
                    reason: "a cosine head (scale given) has no bias".into(),
                });
            }
            Ok(Box::new(CosineHead::new(weights.clone(), s)?))
        }
        None => Ok(Box::new(LinearHead::new(
            weights.clone(),
            bias.map(<[f64]>::to_vec),
        )?)),
    }
}

/// Second streaming pass: compactness (angles of samples to their class
/// mean), NC4 (head prediction vs nearest class mean) and NC1.
///
/// # NC1 without the D x D scatter
/// [`nc1_from`] computes `Tr(Sigma_W Sigma_B^+)/C` as
/// `sum_k v_k^T M Sigma_W M^T v_k / lambda_k^2` over the eigenpairs
/// `(lambda_k, v_k)` of the Gram matrix `M M^T` of the centred means that
/// survive the pseudo-inverse cut-off (at most C - 1 of them). With
/// `u_k = M^T v_k / lambda_k` this is
/// `sum_k u_k^T Sigma_W u_k = (1/N) sum_i sum_k (u_k . (h_i - mu_{y_i}))^2`:
/// a sum of squares of r <= C - 1 projections per sample, accumulated here
/// with the exact class means of the first pass. The pass never forms
/// `Sigma_W` (D^2 / 2 multiply-adds per sample); its cost is the products
/// `X [W; M]^T` (2 C D per sample, f64, one [`gemm_into`] call; the head's
/// predictions use [`HeadLogits::decision_rule`] when it has one) plus
/// `C r` for the projections `u_k . h_i = sum_c v_k[c] (m_c . h_i) / lambda_k`.
pub struct SecondPass<'h> {
    head: &'h dyn HeadLogits,
    /// The head's decision rows (when it has a linear rule) stacked over the
    /// centred class means `M`: one product, one packing of the features,
    /// gives both (2C or C rows x D).
    rows: Matrix,
    /// Whether `rows` starts with the head's decision rows.
    has_rule: bool,
    /// Offsets of the decision rule.
    offsets: Option<Vec<f64>>,
    /// Reused buffers: products, projections, f64 copy of generic input.
    dots: Vec<f64>,
    projections: Vec<f64>,
    staging: Vec<f64>,
    /// `|mu_c|^2`.
    mean_sq: Vec<f64>,
    /// `v_k[c] / lambda_k` as a C x r row-major matrix (None when every
    /// centred mean is zero: NC1 is then undefined).
    proj: Option<Vec<f64>>,
    /// `mu_c . u_k`, C x r, computed along the same path as the samples'.
    mean_proj: Vec<f64>,
    rank: usize,
    nc1_sum: f64,
    count: u64,
    compactness: Compactness,
    nc4: Nc4,
    /// Tables of the mixed-precision products (None: f64 products).
    mixed: Option<mixed::Mixed>,
}

impl<'h> SecondPass<'h> {
    /// Starts a second pass with the class means of `stats` and `head`
    /// whose products run in `precision` (for
    /// [`push_mixed`](Self::push_mixed); [`Precision::Mixed`] needs a head
    /// with a linear decision rule, else the pass uses f64).
    pub fn with_precision(
        stats: &ClassStats,
        head: &'h dyn HeadLogits,
        precision: Precision,
    ) -> Result<Self> {
        let mut pass = Self::new(stats, head)?;
        if precision == Precision::Mixed && pass.has_rule {
            pass.mixed = Some(mixed::Mixed::new(&pass));
        }
        Ok(pass)
    }

    /// The precision of the products.
    pub fn precision(&self) -> Precision {
        if self.mixed.is_some() {
            Precision::Mixed
        } else {
            Precision::F64
        }
    }

    /// Samples whose decisions (head prediction, nearest class mean) the
    /// f32 error bound could not settle and that were recomputed in f64.
    pub fn rechecked(&self) -> u64 {
        self.mixed.as_ref().map_or(0, mixed::Mixed::rechecked)
    }

    /// Starts a second pass with the class means of `stats` and `head`
    /// (f64 products).
    pub fn new(stats: &ClassStats, head: &'h dyn HeadLogits) -> Result<Self> {
        let means = stats.class_means()?;
        check_dim("head classes", means.rows(), head.num_classes())?;
        check_dim("head feature dim", means.cols(), head.dim())?;
        let centered = stats.centered_means()?;
        let (c, d) = (means.rows(), means.cols());
        let eig = sym_eigen(&centered.gram())?;
        let l_max = eig.values.first().copied().unwrap_or(0.0);
        let tol = default_rel_tol(d, c) * l_max;
        let kept: Vec<usize> = (0..c)
            .filter(|&k| l_max > 0.0 && eig.values[k] > tol)
            .collect();
        let rank = kept.len();
        let proj = (rank > 0).then(|| {
            let mut p = vec![0.0; c * rank];
            for (j, &k) in kept.iter().enumerate() {
                for i in 0..c {
                    p[i * rank + j] = eig.vectors.get(i, k) / eig.values[k];
                }
            }
            p
        });
        let mean_proj = match &proj {
            Some(p) => {
                let cross = gemm_rows(means.as_slice(), c, &centered);
                gemm(&cross, c, c, p, rank, Layout::Plain)
            }
            None => Vec::new(),
        };
        let (rows, offsets, has_rule) = match head.decision_rule() {
            Some((r, b)) => {
                let mut data = r.as_slice().to_vec();
                data.extend_from_slice(centered.as_slice());
                (Matrix::new(2 * c, d, data)?, b.map(<[f64]>::to_vec), true)
            }
            None => (centered, None, false),
        };
        Ok(Self {
            head,
            rows,
            has_rule,
            offsets,
            dots: Vec::new(),
            projections: Vec::new(),
            staging: Vec::new(),
            mean_sq: means.iter_rows().map(|m| dot(m, m)).collect(),
            proj,
            mean_proj,
            rank,
            nc1_sum: 0.0,
            count: 0,
            compactness: Compactness::new(means.clone()),
            nc4: Nc4::new(means),
            mixed: None,
        })
    }

    /// Adds a batch (row-major N x D, f32 or f64) with labels.
    pub fn push_batch<T: Copy + Into<f64>>(
        &mut self,
        features: &[T],
        labels: &[usize],
    ) -> Result<()> {
        let mut staging = std::mem::take(&mut self.staging);
        staging.clear();
        staging.extend(features.iter().map(|&v| v.into()));
        let result = self.push_rows(&staging, labels);
        self.staging = staging;
        result
    }

    /// [`push_batch`](Self::push_batch) for f64 rows, without a copy.
    pub fn push_rows(&mut self, xs: &[f64], labels: &[usize]) -> Result<()> {
        self.compactness.push_rows(xs, labels)?;
        let (d, r) = (self.rows.cols(), self.rank);
        let c = self.mean_sq.len();
        let k = labels.len();
        let width = self.rows.rows();
        // One product: the head's decision values (first C columns, when it
        // has a linear rule) and m_c . h_i (last C columns).
        self.dots.resize(k * width, 0.0);
        gemm_into(
            &mut self.dots,
            xs,
            k,
            d,
            self.rows.as_slice(),
            width,
            Layout::Transposed,
        );
        let logits = (!self.has_rule).then(|| self.head.logits_block(xs, k));
        let cross_at = width - c;
        if let Some(p) = &self.proj {
            // u_k . h_i = sum_c (m_c . h_i) v_k[c] / lambda_k.
            self.projections.resize(k * r, 0.0);
            gemm_strided(
                &mut self.projections,
                &self.dots[cross_at..],
                k,
                c,
                width,
                p,
                r,
            );
        }
        // Per sample (in parallel): head prediction, nearest class mean and
        // the NC1 term; then a serial fold.
        use rayon::prelude::*;
        let (dots, mean_sq, offsets) = (&self.dots, &self.mean_sq, self.offsets.as_deref());
        let (projections, mean_proj) = (&self.projections, &self.mean_proj);
        let has_proj = self.proj.is_some();
        let per_sample: Vec<(usize, usize, f64)> = labels
            .par_iter()
            .enumerate()
            .with_min_len(1024)
            .map(|(i, &y)| {
                let row = &dots[i * width..(i + 1) * width];
                let ncc = nearest_mean(mean_sq, &row[cross_at..]);
                let pred = match &logits {
                    Some(l) => argmax(&l[i * c..(i + 1) * c]),
                    None => argmax_offset(&row[..c], offsets),
                };
                let nc1 = if has_proj {
                    let mp = &mean_proj[y * r..(y + 1) * r];
                    projections[i * r..(i + 1) * r]
                        .iter()
                        .zip(mp)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>()
                } else {
                    0.0
                };
                (pred, ncc, nc1)
            })
            .collect();
        for &(pred, ncc, nc1) in &per_sample {
            self.nc4.push_predictions(pred, ncc);
            self.nc1_sum += nc1;
        }
        self.count += k as u64;
        Ok(())
    }

    /// NC1 = `Tr(Sigma_W Sigma_B^+)/C` from the samples pushed so far (the
    /// cut-off of [`nc1_from`] with its default tolerance).
    pub fn nc1(&self) -> Result<f64> {
        if self.proj.is_none() {
            return Err(GeometryError::RankTooLow {
                what: "between-class covariance (all centred class means are zero)",
                needed: 1,
                got: 0,
            });
        }
        if self.count == 0 {
            return Err(GeometryError::EmptyClass { class: 0 });
        }
        Ok(self.nc1_sum / self.count as f64)
    }

    /// Compactness accumulator.
    pub fn compactness(&self) -> &Compactness {
        &self.compactness
    }

    /// NC4 accumulator.
    pub fn nc4(&self) -> &Nc4 {
        &self.nc4
    }
}

/// Nearest class mean from `|mu_c|^2` and `h . m_c`: argmin_c
/// `|mu_c|^2 - 2 h . mu_c`, with `h . mu_c = h . m_c + h . mu_G` (the last
/// term common to all c). The first on ties.
fn nearest_mean(mean_sq: &[f64], cross: &[f64]) -> usize {
    let (mut ncc, mut best) = (0, f64::INFINITY);
    for (j, (&m2, &hm)) in mean_sq.iter().zip(cross).enumerate() {
        let dist = m2 - 2.0 * hm;
        if dist < best {
            (best, ncc) = (dist, j);
        }
    }
    ncc
}

/// Index of the largest `v_j + b_j` (the first on ties).
fn argmax_offset(v: &[f64], b: Option<&[f64]>) -> usize {
    let mut best = 0;
    let mut top = f64::NEG_INFINITY;
    for (j, &x) in v.iter().enumerate() {
        let val = x + b.map_or(0.0, |b| b[j]);
        if val > top {
            (top, best) = (val, j);
        }
    }
    best
}

/// Runs the second pass over one slice of features.
pub fn second_pass<'h, T: Copy + Into<f64>>(
    stats: &ClassStats,
    head: &'h dyn HeadLogits,
    features: &[T],
    labels: &[usize],
) -> Result<SecondPass<'h>> {
    let mut pass = SecondPass::new(stats, head)?;
    pass.push_batch(features, labels)?;
    Ok(pass)
}

/// Per-class row of the report (angles in degrees).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAnalysis {
    /// Class index c.
    pub class: usize,
    /// Samples `n_c`.
    pub count: u64,
    /// `angle(w_c, mu_c)`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub angle_w_mean_deg: f64,
    /// `angle(w_c, m_c)`, `m_c = mu_c - mu_G`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub angle_w_centered_mean_deg: f64,
    /// `angle(w_c, u*_c)`, `u*_c` the softmax centre.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub angle_w_softmax_center_deg: f64,
    /// `angle(u*_c, mu_c)`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub angle_softmax_center_mean_deg: f64,
    /// `p_c(R u*_c)`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub softmax_center_p: f64,
    /// Mean angle of the class samples to `mu_c` (second pass).
    pub compactness_deg: Option<f64>,
    /// Max angle of a class sample to `mu_c` (second pass).
    pub compactness_max_deg: Option<f64>,
}

/// Neural-collapse metrics (Papyan et al. 2020; field notes §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NcMetrics {
    /// `Tr(Sigma_W Sigma_B^+)/C`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc1: f64,
    /// std/mean of `|m_c|`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc2_equinorm_means: f64,
    /// std/mean of `|w_c|`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc2_equinorm_weights: f64,
    /// std of pairwise cosines of the centred means.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc2_equiangularity: f64,
    /// std of pairwise cosines of the weights.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc2_equiangularity_weights: f64,
    /// mean `|cos(m_j, m_k) + 1/(C-1)|`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc2_mean_abs_cos_plus: f64,
    /// max `|angle(m_j, m_k) - acos(-1/(C-1))|`, degrees.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc2_max_angle: f64,
    /// Frobenius error of the cosine Gram of `W` against the polygon Gram.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc2_polygon_gram_error: f64,
    /// The same for the centred means.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc2_polygon_gram_error_means: f64,
    /// `|W/|W|_F - M^T/|M|_F|_F`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub nc3: f64,
    /// Share of samples with head prediction != nearest-class-mean
    /// prediction (second pass).
    pub nc4: Option<f64>,
}

/// Full report (Serialize to JSON for the CLI and HTML report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Head used for the softmax centre and NC4.
    pub head: HeadForm,
    /// R at which the softmax centre was searched (1 for cosine heads,
    /// mean feature norm for linear heads).
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub softmax_center_radius: f64,
    /// Per-class rows.
    pub classes: Vec<ClassAnalysis>,
    /// Mean over classes of `angle(w_c, mu_c)`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub mean_angle_w_mean_deg: f64,
    /// Max over classes of `angle(w_c, mu_c)`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub max_angle_w_mean_deg: f64,
    /// Mean over classes of `angle(w_c, u*_c)`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub mean_angle_w_softmax_center_deg: f64,
    /// NC1-NC4.
    pub nc: NcMetrics,
    /// The paper's symmetry conditions on `W`.
    pub symmetry: Symmetry,
    /// Min angle between two class means `mu_j`, `mu_k`.
    #[serde(deserialize_with = "crate::geometry::nan_as_null")]
    pub separation_deg: f64,
    /// The pair reaching it.
    pub separation_pair: (usize, usize),
    /// Mean angle of all samples to their class mean (second pass).
    pub compactness_mean_deg: Option<f64>,
    /// How the second pass computed its products (None without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_pass: Option<SecondPassInfo>,
}

/// Arithmetic of the second pass, in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondPassInfo {
    /// Precision of the products.
    pub precision: Precision,
    /// Samples whose decisions were recomputed in f64 (mixed precision).
    pub rechecked_f64: u64,
}

/// Analyses weights `W` (C x D) against one-pass statistics (field notes
/// §4). The head is cosine with scale `s` if `scale` is given, else linear
/// with `bias`; the softmax centre of a linear head is searched at
/// `R = stats.mean_norm()`, of a cosine head at R = 1 (it does not depend
/// on R), starting at `w_c` and at `mu_c`. `second` adds compactness and
/// NC4 and gives NC1 (then `stats` may be [`ClassStats::means_only`]);
/// without it NC1 comes from the scatter of `stats`. Needs every class
/// non-empty and C >= 2.
pub fn analyze(
    stats: &ClassStats,
    weights: &Matrix,
    bias: Option<&[f64]>,
    scale: Option<f64>,
    second: Option<&SecondPass<'_>>,
) -> Result<Analysis> {
    check_dim("weight rows (C)", stats.classes(), weights.rows())?;
    check_dim("weight cols (D)", stats.dim(), weights.cols())?;
    let head = build_head(weights, bias, scale)?;
    let (kind, radius) = match scale {
        Some(s) => (HeadForm::Cosine { scale: s }, 1.0),
        None => (HeadForm::Linear, stats.mean_norm()?),
    };
    let means = stats.class_means()?;
    let centered = stats.centered_means()?;
    let to_mean = row_angles_deg(weights, &means)?;
    let to_centered = row_angles_deg(weights, &centered)?;
    let options = CenterOptions {
        radius,
        ..CenterOptions::default()
    };
    let comp = second.map(|s| s.compactness().per_class());
    let mut classes = Vec::with_capacity(stats.classes());
    for c in 0..stats.classes() {
        let center = softmax_center(head.as_ref(), c, Some(means.row(c)), options)?;
        classes.push(ClassAnalysis {
            class: c,
            count: stats.counts()[c],
            angle_w_mean_deg: to_mean[c],
            angle_w_centered_mean_deg: to_centered[c],
            angle_w_softmax_center_deg: angle_deg(weights.row(c), &center.direction),
            angle_softmax_center_mean_deg: center.angle_to_mean_deg,
            softmax_center_p: center.p,
            compactness_deg: comp.as_ref().map(|v| v[c].mean_deg),
            compactness_max_deg: comp.as_ref().map(|v| v[c].max_deg),
        });
    }
    let nc = NcMetrics {
        nc1: match second {
            Some(pass) => pass.nc1()?,
            None => nc1_from(&stats.within_class_cov()?, &centered, None)?,
        },
        nc2_equinorm_means: equinorm(&centered),
        nc2_equinorm_weights: equinorm(weights),
        nc2_equiangularity: equiangularity(&centered)?,
        nc2_equiangularity_weights: equiangularity(weights)?,
        nc2_mean_abs_cos_plus: mean_abs_cos_plus(&centered)?,
        nc2_max_angle: max_angle_deviation_deg(&centered)?,
        nc2_polygon_gram_error: polygon_gram_error(weights)?,
        nc2_polygon_gram_error_means: polygon_gram_error(&centered)?,
        nc3: nc3(weights, &centered)?,
        nc4: second.map(|s| s.nc4().rate()),
    };
    let sep = separation(&means)?;
    let n = classes.len() as f64;
    Ok(Analysis {
        head: kind,
        softmax_center_radius: radius,
        mean_angle_w_mean_deg: to_mean.iter().sum::<f64>() / n,
        max_angle_w_mean_deg: to_mean.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        mean_angle_w_softmax_center_deg: classes
            .iter()
            .map(|c| c.angle_w_softmax_center_deg)
            .sum::<f64>()
            / n,
        classes,
        nc,
        symmetry: symmetry(weights)?,
        separation_deg: sep.min_deg,
        separation_pair: sep.pair,
        compactness_mean_deg: second.map(|s| s.compactness().overall_mean_deg()),
        second_pass: second.map(|s| SecondPassInfo {
            precision: s.precision(),
            rechecked_f64: s.rechecked(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::polygon::polygon_weights;
    use crate::geometry::test_rng::lcg;

    #[test]
    fn collapsed_features_on_polygon_weights() {
        // Features = 5 * w_c plus a symmetric jitter inside the class.
        let (c, d) = (6, 4);
        let w = polygon_weights(&[1.0, 0.2, 0.0, 0.0], &[0.0, 1.0, 0.5, 0.0], c).unwrap();
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for k in 0..c {
            for _ in 0..3 {
                x.extend(w.row(k).iter().map(|v| 5.0 * v));
                labels.push(k);
            }
        }
        let mut stats = ClassStats::new(c, d);
        stats.push_batch(&x, &labels).unwrap();
        let head = build_head(&w, None, Some(16.0)).unwrap();
        let pass = second_pass(&stats, head.as_ref(), &x, &labels).unwrap();
        let a = analyze(&stats, &w, None, Some(16.0), Some(&pass)).unwrap();
        for row in &a.classes {
            assert!(row.angle_w_mean_deg < 1e-6, "{row:?}");
            assert!(row.angle_w_centered_mean_deg < 1e-6, "{row:?}");
            assert!(row.angle_w_softmax_center_deg < 1e-6, "{row:?}");
            assert!(row.compactness_deg.unwrap() < 1e-6);
        }
        assert!(a.nc.nc1.abs() < 1e-12, "{}", a.nc.nc1);
        assert!(a.nc.nc3 < 1e-12 && a.nc.nc2_polygon_gram_error < 1e-12);
        assert_eq!(a.nc.nc4, Some(0.0));
        assert!(a.symmetry.coplanarity < 1e-12);
        assert!((a.separation_deg - 60.0).abs() < 1e-9);
        // Linear head with a bias: works and reports the mean norm as R.
        let lin = analyze(&stats, &w, Some(&[0.0; 6]), None, None).unwrap();
        assert!((lin.softmax_center_radius - 5.0).abs() < 1e-12);
        assert!(lin.nc.nc4.is_none());
        assert!(analyze(&stats, &w, Some(&[0.0; 6]), Some(16.0), None).is_err());
    }

    /// The projected NC1 of the second pass equals NC1 from the full
    /// scatter, for full-rank means (C - 1 < D) and for C > D, where the
    /// pseudo-inverse drops directions; classes sit far from the origin.
    #[test]
    fn projected_nc1_matches_the_scatter_formula() {
        for (c, d, n) in [(5, 8, 400), (9, 4, 500), (3, 3, 90)] {
            let mut s = 42 + c as u64;
            let offset: Vec<f64> = (0..d).map(|_| 50.0 * lcg(&mut s)).collect();
            let centers: Vec<Vec<f64>> = (0..c)
                .map(|_| offset.iter().map(|o| o + 3.0 * lcg(&mut s)).collect())
                .collect();
            let labels: Vec<usize> = (0..n).map(|i| (i * 7 + i / 3) % c).collect();
            let x: Vec<f64> = labels
                .iter()
                .flat_map(|&y| {
                    centers[y]
                        .iter()
                        .map(|v| v + lcg(&mut s))
                        .collect::<Vec<_>>()
                })
                .collect();
            let mut full = ClassStats::new(c, d);
            full.push_batch(&x, &labels).unwrap();
            let mut lean = ClassStats::means_only(c, d);
            lean.push_batch(&x, &labels).unwrap();
            let w = Matrix::from_fn(c, d, |i, j| centers[i][j] + lcg(&mut s));
            let head = build_head(&w, None, None).unwrap();
            let mut pass = SecondPass::new(&lean, head.as_ref()).unwrap();
            // Two batches, to exercise accumulation.
            let half = n / 2;
            pass.push_batch(&x[..half * d], &labels[..half]).unwrap();
            pass.push_batch(&x[half * d..], &labels[half..]).unwrap();
            let want = nc1_from(
                &full.within_class_cov().unwrap(),
                &full.centered_means().unwrap(),
                None,
            )
            .unwrap();
            let got = pass.nc1().unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1e-12),
                "C={c} D={d}: projected {got} vs scatter {want}"
            );
            let a = analyze(&lean, &w, None, None, Some(&pass)).unwrap();
            assert_eq!(a.nc.nc1, got);
            // Without a second pass, means-only statistics cannot give NC1.
            assert!(analyze(&lean, &w, None, None, None).is_err());
        }
    }
}
