//! NormFace / normalized softmax (Wang et al., ACM MM 2017): logits
//! `s cos t_j`, no margin, no bias (field notes §3; s = 16..20).

use super::Head;
use super::HeadOps;
use super::margin::{CosineWeights, scaled_cosine_head_ops};
use super::params::{HeadDesc, HeadError, Params, SCALE_16, no_check};
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

/// `normface` (field notes §3).
pub(super) const DESC: HeadDesc = HeadDesc {
    name: "normface",
    aliases: &[],
    formula: "s cos t_j",
    params: &[SCALE_16],
    cosine: true,
    learned: true,
    check: no_check,
};

/// Build a NormFace head.
pub(super) fn init<B: Backend>(
    p: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    Ok(Head::Normface(NormFaceHead::new(d, c, p["s"], device)))
}
