//! CosFace / large margin cosine loss (Wang et al., CVPR 2018): target logit
//! `s (cos t_y - m)`, others `s cos t_j` (field notes §3; s = 64, m = 0.35).

use super::Head;
use super::HeadOps;
use super::margin::{CosineWeights, replace_target, scaled_cosine_head_ops};
use super::params::{Check, HeadDesc, HeadError, ParamDef, Params, no_check, scale};
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

/// `cosface` (field notes §3).
pub(super) const DESC: HeadDesc = HeadDesc {
    name: "cosface",
    aliases: &[],
    formula: "s (cos t_y - m); others s cos t_j",
    params: &[
        scale(64.0),
        ParamDef {
            name: "m",
            default: 0.35,
            doc: "cosine margin, in [0, 1)",
            check: Check::closed_open(0.0, 1.0, "a cosine margin in [0, 1)"),
        },
    ],
    cosine: true,
    learned: true,
    check: no_check,
};

/// Build a CosFace head.
pub(super) fn init<B: Backend>(
    p: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    Ok(Head::Cosface(CosFaceHead::new(
        d, c, p["s"], p["m"], device,
    )))
}
