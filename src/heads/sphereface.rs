//! SphereFace / A-Softmax (Liu et al., CVPR 2017), field notes §3: weights
//! normalised, features not; logits `|x| cos t_j`, target `|x| psi(t_y)` with
//! `psi(t) = (-1)^k cos(m t) - 2k`, `k = floor(m t / pi)`, m integer
//! (default 4).
//!
//! `cos(m t)` is the Chebyshev polynomial `T_m(cos t)` (no `acos`), and `k`
//! counts the thresholds `cos(j pi / m)` (j = 1..m) that `cos t` is at or
//! below, as in the original implementation.
//!
//! Lambda annealing (the original training recipe): the target logit is
//! `|x| (lambda cos t + psi(t)) / (1 + lambda)` with
//! `lambda = max(lambda_min, base (1 + gamma it)^-power)`, `it` the optimizer
//! step (defaults base 1000, gamma 0.12, power 1, lambda_min 5). With
//! `anneal = 0` a fixed `lambda` is used instead (0 = pure A-Softmax); this
//! is also how `symfeat heads eval` evaluates a given lambda.

use super::Head;
use super::HeadOps;
use super::margin::{COS_CLAMP, CosineWeights, replace_target};
use super::params::{Check, HeadDesc, HeadError, ParamDef, Params};
use burn::prelude::*;
use std::f64::consts::PI;

/// Lambda of the annealing schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lambda {
    /// Use the schedule (else `fixed`).
    pub anneal: bool,
    /// Fixed lambda when not annealing.
    pub fixed: f64,
    /// Schedule base.
    pub base: f64,
    /// Schedule gamma.
    pub gamma: f64,
    /// Schedule power.
    pub power: f64,
    /// Floor of the schedule.
    pub min: f64,
}

impl Lambda {
    /// Lambda at optimizer step `it`.
    pub fn at(&self, it: usize) -> f64 {
        if self.anneal {
            (self.base * (1.0 + self.gamma * it as f64).powf(-self.power)).max(self.min)
        } else {
            self.fixed
        }
    }
}

/// SphereFace head.
#[derive(Module, Debug)]
pub struct SphereFaceHead<B: Backend> {
    pub(crate) weights: CosineWeights<B>,
    m: usize,
    anneal: bool,
    lambda_fixed: f64,
    lambda_base: f64,
    lambda_gamma: f64,
    lambda_power: f64,
    lambda_min: f64,
}

/// Chebyshev `T_m(c) = cos(m acos c)` by the recurrence.
fn chebyshev<B: Backend>(c: Tensor<B, 2>, m: usize) -> Tensor<B, 2> {
    let mut prev = c.ones_like(); // T_0
    let mut cur = c.clone(); // T_1
    if m == 0 {
        return prev;
    }
    for _ in 1..m {
        let next = c.clone() * cur.clone() * 2.0 - prev;
        prev = cur;
        cur = next;
    }
    cur
}

/// `psi(t) = (-1)^k cos(m t) - 2k` from `cos t` `[B, 1]`.
pub fn psi<B: Backend>(cos_y: Tensor<B, 2>, m: usize) -> Tensor<B, 2> {
    let c = cos_y.clamp(-COS_CLAMP, COS_CLAMP);
    let mut k = c.zeros_like();
    for j in 1..=m {
        let below = c
            .clone()
            .lower_equal_elem((j as f64 * PI / m as f64).cos())
            .float();
        k = k + below;
    }
    let cos_mt = chebyshev(c, m);
    // (-1)^k = 1 - 2 (k mod 2)
    let sign = (k.clone() - (k.clone() / 2.0).floor() * 2.0) * -2.0 + 1.0;
    sign * cos_mt - k * 2.0
}

impl<B: Backend> SphereFaceHead<B> {
    /// `d` features, `c` classes, integer margin `m`, lambda schedule.
    pub fn new(d: usize, c: usize, m: usize, lambda: Lambda, device: &B::Device) -> Self {
        Self {
            weights: CosineWeights::new(d, c, device),
            m,
            anneal: lambda.anneal,
            lambda_fixed: lambda.fixed,
            lambda_base: lambda.base,
            lambda_gamma: lambda.gamma,
            lambda_power: lambda.power,
            lambda_min: lambda.min,
        }
    }

    /// The lambda schedule.
    pub fn lambda(&self) -> Lambda {
        Lambda {
            anneal: self.anneal,
            fixed: self.lambda_fixed,
            base: self.lambda_base,
            gamma: self.lambda_gamma,
            power: self.lambda_power,
            min: self.lambda_min,
        }
    }
}

impl<B: Backend> HeadOps<B> for SphereFaceHead<B> {
    fn load_weights(
        &mut self,
        weights: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Result<(), HeadError> {
        self.weights.load(weights, bias)
    }
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        let norm = features.clone().powf_scalar(2.0).sum_dim(1).sqrt(); // [B, 1]
        self.weights.cosines(features) * norm
    }
    fn train_logits(
        &self,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        step: usize,
    ) -> Tensor<B, 2> {
        let norm = features.clone().powf_scalar(2.0).sum_dim(1).sqrt(); // [B, 1]
        let (m, lambda) = (self.m, self.lambda().at(step));
        let cos = replace_target(self.weights.cosines(features), labels, |cos_y| {
            (cos_y.clone() * lambda + psi(cos_y, m)) / (1.0 + lambda)
        });
        cos * norm
    }
    /// Unit rows: A-Softmax normalises its weights, so at test time the
    /// logits are exactly the linear head `x . w^_j` of these rows (what the
    /// probe and `analyze` evaluate).
    fn class_weights(&self) -> Tensor<B, 2> {
        super::l2_normalize(self.weights.rows())
    }
}

/// `sphereface` (field notes §3).
pub(super) const DESC: HeadDesc = HeadDesc {
    name: "sphereface",
    aliases: &["a-softmax"],
    formula: "|x| psi(t_y), psi(t) = (-1)^k cos(m t) - 2k, k = floor(m t / pi); others |x| cos t_j",
    params: &[
        ParamDef {
            name: "m",
            default: 4.0,
            doc: "integer angular margin (>= 1)",
            check: Check::Finite,
        },
        ParamDef {
            name: "anneal",
            default: 1.0,
            doc: "1: lambda = max(lambda_min, lambda_base (1 + lambda_gamma it)^-lambda_power); 0: fixed lambda",
            check: Check::Flag,
        },
        ParamDef {
            name: "lambda",
            default: 0.0,
            doc: "fixed lambda (0 = pure A-Softmax); giving it turns annealing off",
            check: Check::NON_NEGATIVE,
        },
        ParamDef {
            name: "lambda_base",
            default: 1000.0,
            doc: "annealing base",
            check: Check::NON_NEGATIVE,
        },
        ParamDef {
            name: "lambda_gamma",
            default: 0.12,
            doc: "annealing gamma",
            check: Check::NON_NEGATIVE,
        },
        ParamDef {
            name: "lambda_power",
            default: 1.0,
            doc: "annealing power",
            check: Check::NON_NEGATIVE,
        },
        ParamDef {
            name: "lambda_min",
            default: 5.0,
            doc: "annealing floor",
            check: Check::NON_NEGATIVE,
        },
    ],
    cosine: true,
    learned: true,
    check,
};

/// An integer m in 1..=10; an explicit `lambda` means a fixed lambda
/// (annealing would silently replace it), and with an explicit `anneal = 1`
/// the two contradict each other.
fn check(p: &mut Params) -> Result<(), HeadError> {
    if p.given("lambda") {
        if p.given("anneal") && p.flag("anneal") {
            return Err(HeadError::Other(format!(
                "head parameters lambda = {} and anneal = {} contradict each other: \
                 a given lambda is a fixed lambda (anneal = 0); drop one of them",
                p["lambda"], p["anneal"]
            )));
        }
        p.set("anneal", 0.0);
    }
    let m = p["m"];
    if m.fract() != 0.0 || !(1.0..=10.0).contains(&m) {
        return Err(HeadError::Other(format!(
            "head parameter m = {m}: SphereFace needs an integer m in 1..=10"
        )));
    }
    Ok(())
}

/// Build a SphereFace head.
pub(super) fn init<B: Backend>(
    p: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    let lambda = Lambda {
        anneal: p.flag("anneal"),
        fixed: p["lambda"],
        base: p["lambda_base"],
        gamma: p["lambda_gamma"],
        power: p["lambda_power"],
        min: p["lambda_min"],
    };
    Ok(Head::Sphereface(SphereFaceHead::new(
        d,
        c,
        p["m"] as usize,
        lambda,
        device,
    )))
}
