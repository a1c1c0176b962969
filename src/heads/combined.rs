//! Combined margin (InsightFace): target logit `s (cos(m1 t_y + m2) - m3)`,
//! others `s cos t_j` (field notes §3). ArcFace is (1, 0.5, 0), CosFace
//! (1, 0, 0.35); the default (1, 0.3, 0.2) is InsightFace's combination.
//! The cosine is clamped to ±(1 - 1e-7) before `acos`. As in the reference
//! code there is no fallback when `m1 t + m2 > pi`.

use super::HeadOps;
use super::margin::{COS_CLAMP, CosineWeights, replace_target, scaled_cosine_head_ops};
use burn::prelude::*;

/// Combined-margin head.
#[derive(Module, Debug)]
pub struct CombinedHead<B: Backend> {
    pub(crate) weights: CosineWeights<B>,
    scale: f64,
    m1: f64,
    m2: f64,
    m3: f64,
}

impl<B: Backend> CombinedHead<B> {
    /// `d` features, `c` classes, scale `s`, margins `m1` (multiplicative
    /// angular), `m2` (additive angular, radians), `m3` (additive cosine).
    pub fn new(d: usize, c: usize, s: f64, m1: f64, m2: f64, m3: f64, device: &B::Device) -> Self {
        Self {
            weights: CosineWeights::new(d, c, device),
            scale: s,
            m1,
            m2,
            m3,
        }
    }
}

impl<B: Backend> HeadOps<B> for CombinedHead<B> {
    scaled_cosine_head_ops!();
    fn train_logits(
        &self,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        _step: usize,
    ) -> Tensor<B, 2> {
        let (m1, m2, m3) = (self.m1, self.m2, self.m3);
        let logits = replace_target(self.weights.cosines(features), labels, |cos_y| {
            let t = cos_y.clamp(-COS_CLAMP, COS_CLAMP).acos();
            (t * m1 + m2).cos() - m3
        });
        logits * self.scale
    }
}
