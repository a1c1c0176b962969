//! CosFace / large margin cosine loss (Wang et al., CVPR 2018): target logit
//! `s (cos t_y - m)`, others `s cos t_j` (field notes §3; s = 64, m = 0.35).

use super::HeadOps;
use super::margin::{CosineWeights, replace_target, scaled_cosine_head_ops};
use burn::prelude::*;

/// CosFace head.
#[derive(Module, Debug)]
pub struct CosFaceHead<B: Backend> {
    pub(crate) weights: CosineWeights<B>,
    scale: f64,
    margin: f64,
}

impl<B: Backend> CosFaceHead<B> {
    /// `d` features, `c` classes, scale `s`, margin `m`.
    pub fn new(d: usize, c: usize, s: f64, m: f64, device: &B::Device) -> Self {
        Self {
            weights: CosineWeights::new(d, c, device),
            scale: s,
            margin: m,
        }
    }
}

impl<B: Backend> HeadOps<B> for CosFaceHead<B> {
    scaled_cosine_head_ops!();
    fn train_logits(
        &self,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        _step: usize,
    ) -> Tensor<B, 2> {
        let m = self.margin;
        replace_target(self.weights.cosines(features), labels, |cos_y| cos_y - m) * self.scale
    }
}
