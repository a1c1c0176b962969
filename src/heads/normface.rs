//! NormFace / normalized softmax (Wang et al., ACM MM 2017): logits
//! `s cos t_j`, no margin, no bias (field notes §3; s = 16..20).

use super::HeadOps;
use super::margin::{CosineWeights, scaled_cosine_head_ops};
use burn::prelude::*;

/// NormFace head.
#[derive(Module, Debug)]
pub struct NormFaceHead<B: Backend> {
    pub(crate) weights: CosineWeights<B>,
    scale: f64,
}

impl<B: Backend> NormFaceHead<B> {
    /// `d` features, `c` classes, scale `s`.
    pub fn new(d: usize, c: usize, s: f64, device: &B::Device) -> Self {
        Self {
            weights: CosineWeights::new(d, c, device),
            scale: s,
        }
    }
}

impl<B: Backend> HeadOps<B> for NormFaceHead<B> {
    scaled_cosine_head_ops!();
}
