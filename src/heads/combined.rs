//! Combined margin (InsightFace): target logit `s (cos(m1 t_y + m2) - m3)`,
//! others `s cos t_j` (field notes §3). ArcFace is (1, 0.5, 0), CosFace
//! (1, 0, 0.35); the default (1, 0.3, 0.2) is InsightFace's combination.
//! The cosine is clamped to ±(1 - 1e-7) before `acos`. As in the reference
//! code there is no fallback when `m1 t + m2 > pi`.

use super::Head;
use super::HeadOps;
use super::margin::{COS_CLAMP, CosineWeights, replace_target, scaled_cosine_head_ops};
use super::params::{Check, HeadDesc, HeadError, ParamDef, Params, no_check, scale};
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

/// `combined` (field notes §3).
pub(super) const DESC: HeadDesc = HeadDesc {
    name: "combined",
    aliases: &[],
    formula: "s (cos(m1 t_y + m2) - m3); others s cos t_j",
    params: &[
        scale(64.0),
        ParamDef {
            name: "m1",
            default: 1.0,
            doc: "multiplicative angular margin (> 0)",
            check: Check::open(0.0, 10.0, "a factor in (0, 10)"),
        },
        ParamDef {
            name: "m2",
            default: 0.3,
            doc: "additive angular margin, radians, in [0, pi)",
            check: Check::closed_open(0.0, std::f64::consts::PI, "an angle in [0, pi) radians"),
        },
        ParamDef {
            name: "m3",
            default: 0.2,
            doc: "additive cosine margin, in [0, 1)",
            check: Check::closed_open(0.0, 1.0, "a cosine margin in [0, 1)"),
        },
    ],
    cosine: true,
    learned: true,
    check: no_check,
};

/// Build a combined-margin head.
pub(super) fn init<B: Backend>(
    p: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    Ok(Head::Combined(CombinedHead::new(
        d, c, p["s"], p["m1"], p["m2"], p["m3"], device,
    )))
}
