//! ArcFace / additive angular margin (Deng et al., CVPR 2019): target logit
//! `s cos(t_y + m)`, others `s cos t_j` (field notes §3; s = 64, m = 0.5 rad).
//!
//! `cos(t + m) = cos t cos m - sin t sin m` with `sin t = sqrt(1 - cos^2 t)`
//! and the cosine clamped to ±(1 - 1e-7) first, so neither `acos` nor the
//! square root sees |cos| = 1. Branches, as in the reference code:
//! - default: when `t + m > pi` (i.e. `cos t < cos(pi - m)`) the target is
//!   `cos t - m sin m` instead, keeping the logit decreasing in t;
//! - `easy_margin = 1`: the margin only applies where `cos t > 0`;
//! - `detach_margin = 1`: the margin is added without gradient through it
//!   (`cos t + stopgrad(target - cos t)`), as recent implementations do for
//!   stability.

use super::Head;
use super::HeadOps;
use super::margin::{COS_CLAMP, CosineWeights, replace_target, scaled_cosine_head_ops};
use super::params::{Check, HeadDesc, HeadError, ParamDef, Params, no_check, scale};
use burn::prelude::*;
use std::f64::consts::PI;

/// ArcFace head.
#[derive(Module, Debug)]
pub struct ArcFaceHead<B: Backend> {
    pub(crate) weights: CosineWeights<B>,
    scale: f64,
    margin: f64,
    easy_margin: bool,
    detach_margin: bool,
}

impl<B: Backend> ArcFaceHead<B> {
    /// `d` features, `c` classes, scale `s`, margin `m` (radians).
    pub fn new(
        d: usize,
        c: usize,
        s: f64,
        m: f64,
        easy: bool,
        detach: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            weights: CosineWeights::new(d, c, device),
            scale: s,
            margin: m,
            easy_margin: easy,
            detach_margin: detach,
        }
    }
}

/// The ArcFace target cosine for `cos_y [B, 1]`.
pub fn arcface_target<B: Backend>(cos_y: Tensor<B, 2>, m: f64, easy: bool) -> Tensor<B, 2> {
    let c = cos_y.clamp(-COS_CLAMP, COS_CLAMP);
    let sin = (c.clone().powf_scalar(2.0).neg() + 1.0).sqrt();
    let phi = c.clone() * m.cos() - sin * m.sin(); // cos(t + m)
    if easy {
        let keep = c.clone().lower_equal_elem(0.0);
        phi.mask_where(keep, c)
    } else {
        let past_pi = c.clone().lower_elem((PI - m).cos()); // t + m > pi
        phi.mask_where(past_pi, c - m * m.sin())
    }
}

impl<B: Backend> HeadOps<B> for ArcFaceHead<B> {
    scaled_cosine_head_ops!();
    fn train_logits(
        &self,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        _step: usize,
    ) -> Tensor<B, 2> {
        let (m, easy, detach) = (self.margin, self.easy_margin, self.detach_margin);
        let logits = replace_target(self.weights.cosines(features), labels, |cos_y| {
            let target = arcface_target(cos_y.clone(), m, easy);
            if detach {
                cos_y.clone() + (target - cos_y).detach()
            } else {
                target
            }
        });
        logits * self.scale
    }
}

/// `arcface` (field notes §3).
pub(super) const DESC: HeadDesc = HeadDesc {
    name: "arcface",
    aliases: &[],
    formula: "s cos(t_y + m), s (cos t_y - m sin m) past pi; others s cos t_j",
    params: &[
        scale(64.0),
        ParamDef {
            name: "m",
            default: 0.5,
            doc: "angular margin in radians, in [0, pi/2)",
            check: Check::closed_open(
                0.0,
                std::f64::consts::FRAC_PI_2,
                "an angle in [0, pi/2) radians",
            ),
        },
        ParamDef {
            name: "easy_margin",
            default: 0.0,
            doc: "1: apply the margin only where cos t > 0",
            check: Check::Flag,
        },
        ParamDef {
            name: "detach_margin",
            default: 0.0,
            doc: "1: add the margin without gradient through it",
            check: Check::Flag,
        },
    ],
    cosine: true,
    learned: true,
    check: no_check,
};

/// Build an ArcFace head.
pub(super) fn init<B: Backend>(
    p: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    Ok(Head::Arcface(ArcFaceHead::new(
        d,
        c,
        p["s"],
        p["m"],
        p.flag("easy_margin"),
        p.flag("detach_margin"),
        device,
    )))
}
