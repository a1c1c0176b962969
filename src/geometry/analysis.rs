//! One call from statistics and a weight matrix to the full report of field
//! notes §4: per-class angles to the class centres and to the softmax
//! centre, NC1-NC4, the paper's symmetry conditions and the separation.
//!
//! First pass: [`ClassStats`]. Optional second pass (needs the class means):
//! [`SecondPass`] for compactness and NC4. Then [`analyze`].

use serde::Serialize;

use super::angles::{Compactness, angle_deg, row_angles_deg, separation};
use super::collapse::{
    Nc4, Symmetry, equiangularity, equinorm, max_angle_deviation_deg, mean_abs_cos_plus, nc1_from,
    nc3, polygon_gram_error, symmetry,
};
use super::error::{GeometryError, Result, check_dim};
use super::landscape::{
    CenterOptions, CosineHead, HeadLogits, LinearHead, argmax, block_dots, softmax_center,
};
use super::linalg::dot;

/// Samples per block of the second pass (the block stays in L1/L2 while
/// every class row streams past it once).
const BLOCK: usize = 16;
use super::linalg::Matrix;
use super::stats::ClassStats;

/// Which head the weights belong to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum HeadKind {
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
/// mean) and NC4 (head prediction vs nearest class mean).
pub struct SecondPass<'h> {
    head: &'h dyn HeadLogits,
    means: Matrix,
    compactness: Compactness,
    nc4: Nc4,
}

impl<'h> SecondPass<'h> {
    /// Starts a second pass with the class means of `stats` and `head`.
    pub fn new(stats: &ClassStats, head: &'h dyn HeadLogits) -> Result<Self> {
        let means = stats.class_means()?;
        check_dim("head classes", means.rows(), head.num_classes())?;
        check_dim("head feature dim", means.cols(), head.dim())?;
        Ok(Self {
            head,
            compactness: Compactness::new(means.clone()),
            nc4: Nc4::new(means.clone()),
            means,
        })
    }

    /// Adds a batch (row-major N x D, f32 or f64) with labels.
    pub fn push_batch<T: Copy + Into<f64>>(
        &mut self,
        features: &[T],
        labels: &[usize],
    ) -> Result<()> {
        self.compactness.push_batch(features, labels)?;
        let (d, c) = (self.means.cols(), self.means.rows());
        // Nearest class mean: argmin_c |m_c|^2 - 2 x . m_c (|x|^2 is common).
        let mean_sq: Vec<f64> = self.means.iter_rows().map(|m| dot(m, m)).collect();
        let mut xs = Vec::with_capacity(BLOCK * d);
        for (rows, labs) in features.chunks(BLOCK * d).zip(labels.chunks(BLOCK)) {
            xs.clear();
            xs.extend(rows.iter().map(|&v| v.into()));
            let k = labs.len();
            let logits = self.head.logits_block(&xs, k);
            let cross = block_dots(&xs, k, &self.means);
            for i in 0..k {
                let mut ncc = 0;
                let mut best = f64::INFINITY;
                for j in 0..c {
                    let dist = mean_sq[j] - 2.0 * cross[i * c + j];
                    if dist < best {
                        (best, ncc) = (dist, j);
                    }
                }
                self.nc4
                    .push_predictions(argmax(&logits[i * c..(i + 1) * c]), ncc);
            }
        }
        Ok(())
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassAnalysis {
    /// Class index c.
    pub class: usize,
    /// Samples `n_c`.
    pub count: u64,
    /// `angle(w_c, mu_c)`.
    pub angle_w_mean_deg: f64,
    /// `angle(w_c, m_c)`, `m_c = mu_c - mu_G`.
    pub angle_w_centered_mean_deg: f64,
    /// `angle(w_c, u*_c)`, `u*_c` the softmax centre.
    pub angle_w_softmax_center_deg: f64,
    /// `angle(u*_c, mu_c)`.
    pub angle_softmax_center_mean_deg: f64,
    /// `p_c(R u*_c)`.
    pub softmax_center_p: f64,
    /// Mean angle of the class samples to `mu_c` (second pass).
    pub compactness_deg: Option<f64>,
    /// Max angle of a class sample to `mu_c` (second pass).
    pub compactness_max_deg: Option<f64>,
}

/// Neural-collapse metrics (Papyan et al. 2020; field notes §4).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NcMetrics {
    /// `Tr(Sigma_W Sigma_B^+)/C`.
    pub nc1: f64,
    /// std/mean of `|m_c|`.
    pub nc2_equinorm_means: f64,
    /// std/mean of `|w_c|`.
    pub nc2_equinorm_weights: f64,
    /// std of pairwise cosines of the centred means.
    pub nc2_equiangularity: f64,
    /// std of pairwise cosines of the weights.
    pub nc2_equiangularity_weights: f64,
    /// mean `|cos(m_j, m_k) + 1/(C-1)|`.
    pub nc2_mean_abs_cos_plus: f64,
    /// max `|angle(m_j, m_k) - acos(-1/(C-1))|`, degrees.
    pub nc2_max_angle: f64,
    /// Frobenius error of the cosine Gram of `W` against the polygon Gram.
    pub nc2_polygon_gram_error: f64,
    /// The same for the centred means.
    pub nc2_polygon_gram_error_means: f64,
    /// `|W/|W|_F - M^T/|M|_F|_F`.
    pub nc3: f64,
    /// Share of samples with head prediction != nearest-class-mean
    /// prediction (second pass).
    pub nc4: Option<f64>,
}

/// Full report (Serialize to JSON for the CLI and HTML report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Head used for the softmax centre and NC4.
    pub head: HeadKind,
    /// R at which the softmax centre was searched (1 for cosine heads,
    /// mean feature norm for linear heads).
    pub softmax_center_radius: f64,
    /// Per-class rows.
    pub classes: Vec<ClassAnalysis>,
    /// Mean over classes of `angle(w_c, mu_c)`.
    pub mean_angle_w_mean_deg: f64,
    /// Max over classes of `angle(w_c, mu_c)`.
    pub max_angle_w_mean_deg: f64,
    /// Mean over classes of `angle(w_c, u*_c)`.
    pub mean_angle_w_softmax_center_deg: f64,
    /// NC1-NC4.
    pub nc: NcMetrics,
    /// The paper's symmetry conditions on `W`.
    pub symmetry: Symmetry,
    /// Min angle between two class means `mu_j`, `mu_k`.
    pub separation_deg: f64,
    /// The pair reaching it.
    pub separation_pair: (usize, usize),
    /// Mean angle of all samples to their class mean (second pass).
    pub compactness_mean_deg: Option<f64>,
}

/// Analyses weights `W` (C x D) against one-pass statistics (field notes
/// §4). The head is cosine with scale `s` if `scale` is given, else linear
/// with `bias`; the softmax centre of a linear head is searched at
/// `R = stats.mean_norm()`, of a cosine head at R = 1 (it does not depend
/// on R), starting at `w_c` and at `mu_c`. `second` adds compactness and
/// NC4. Needs every class non-empty and C >= 2.
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
        Some(s) => (HeadKind::Cosine { scale: s }, 1.0),
        None => (HeadKind::Linear, stats.mean_norm()?),
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
        nc1: nc1_from(&stats.within_class_cov()?, &centered, None)?,
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::polygon::polygon_weights;

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
}
