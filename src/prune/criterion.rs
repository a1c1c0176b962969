//! The importance criteria of `symfeat prune` (Molchanov et al., CVPR 2019,
//! field notes §8.4), per unit (a channel of a prunable group), from one
//! minibatch's gradient of the batch-mean loss:
//!
//! - `taylor-fo-bn`: `(dL/dz)^2` on the unit's gate `z` (the paper's best);
//!   a gate shared by the residual sums of a ResNet stage accumulates
//!   `dL/dz` over its sites, and the score is divided by their number, as
//!   the authors' code does for skip connections;
//! - `taylor-fo`: `(sum_s g_s w_s)^2` over the unit's weights (every
//!   producer's output filter and bias), the first-order loss change of
//!   removing them (the paper's group form; the released code's method 0
//!   sums the squares instead);
//! - `taylor-so`: `(-sum_s g_s w_s + 1/2 sum_s h_s w_s^2)^2`, the second-
//!   order loss change of removing them with the Hessian diagonal `h`;
//!   burn has no second derivatives, so `h` is Hutchinson's estimate from
//!   two more gradients per minibatch (`engine::hessian_diagonal`; the
//!   authors' code computes the exact diagonal by double backpropagation,
//!   for gates only);
//! - `weight`: `sum_s w_s^2` over the same weights (the code's method 2);
//! - `random`: uniform scores, drawn again at every pruning round.

use serde::{Deserialize, Serialize};

/// How units are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Criterion {
    /// `(dL/dz)^2` on the gate after BatchNorm (or the activation).
    #[serde(rename = "taylor-fo-bn")]
    TaylorFoBn,
    /// `(sum g w)^2` over the unit's weights.
    #[serde(rename = "taylor-fo")]
    TaylorFo,
    /// `(-sum g w + 1/2 sum h w^2)^2`, `h` the Hessian diagonal (estimated).
    #[serde(rename = "taylor-so")]
    TaylorSo,
    /// `sum w^2` over the unit's weights.
    #[serde(rename = "weight")]
    Weight,
    /// Uniform random.
    #[serde(rename = "random")]
    Random,
}

impl Criterion {
    /// Every criterion, for help texts and the oracle.
    pub const ALL: [Criterion; 5] = [
        Self::TaylorFoBn,
        Self::TaylorFo,
        Self::TaylorSo,
        Self::Weight,
        Self::Random,
    ];

    /// Parse a CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::TaylorFoBn => "taylor-fo-bn",
            Self::TaylorFo => "taylor-fo",
            Self::TaylorSo => "taylor-so",
            Self::Weight => "weight",
            Self::Random => "random",
        }
    }

    /// The names, for errors.
    pub fn names() -> String {
        let v: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
        v.join(", ")
    }

    /// Needs the gates' gradient.
    pub fn needs_gate_grad(self) -> bool {
        self == Self::TaylorFoBn
    }
}

/// One producer tensor of a group: its values, their loss gradient, and
/// the index lists of its output channels.
pub struct UnitWeights<'a> {
    /// Flat values.
    pub w: &'a [f32],
    /// Their gradient, where the criterion needs it.
    pub g: Option<&'a [f32]>,
    /// Their Hessian diagonal (`taylor-so`).
    pub h: Option<&'a [f32]>,
    /// Per channel, the indices into `w`.
    pub channels: Vec<Vec<usize>>,
}

/// The unit scores of a group from its producers' tensors, `taylor-fo` or
/// `weight`.
pub fn weight_scores(
    criterion: Criterion,
    channels: usize,
    tensors: &[UnitWeights<'_>],
) -> Vec<f64> {
    let mut first = vec![0.0f64; channels];
    let mut second = vec![0.0f64; channels];
    let mut norm = vec![0.0f64; channels];
    for UnitWeights {
        w,
        g,
        h,
        channels: chans,
    } in tensors
    {
        for (k, idx) in chans.iter().enumerate().take(channels) {
            for &i in idx {
                let wi = w[i] as f64;
                norm[k] += wi * wi;
                if let Some(g) = g {
                    first[k] += g[i] as f64 * wi;
                }
                if let Some(h) = h {
                    second[k] += 0.5 * h[i] as f64 * wi * wi;
                }
            }
        }
    }
    match criterion {
        Criterion::TaylorFo => first.iter().map(|s| s * s).collect(),
        Criterion::TaylorSo => first
            .iter()
            .zip(&second)
            .map(|(f, s)| (s - f).powi(2))
            .collect(),
        _ => norm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_weight_scores_match_hand_values() {
        for c in Criterion::ALL {
            assert_eq!(Criterion::parse(c.name()), Some(c));
        }
        assert_eq!(Criterion::parse("taylor-so"), Some(Criterion::TaylorSo));
        // Two channels of two weights each, and a bias.
        let w = [1.0f32, -2.0, 3.0, 0.5];
        let g = [0.5f32, 0.25, -1.0, 2.0];
        let b = [1.0f32, 2.0];
        let bg = [0.1f32, 0.0];
        let t = [
            UnitWeights {
                w: &w,
                g: Some(&g),
                h: Some(&[2.0, 0.0, 1.0, 4.0]),
                channels: vec![vec![0, 1], vec![2, 3]],
            },
            UnitWeights {
                w: &b,
                g: Some(&bg),
                h: Some(&[0.0, 0.0]),
                channels: vec![vec![0], vec![1]],
            },
        ];
        let fo = weight_scores(Criterion::TaylorFo, 2, &t);
        // channel 0: 0.5 - 0.5 + 0.1 = 0.1; channel 1: -3 + 1 + 0 = -2
        assert!(
            (fo[0] - 0.01).abs() < 1e-9 && (fo[1] - 4.0).abs() < 1e-9,
            "{fo:?}"
        );
        // + 1/2 sum h w^2: channel 0: 0.5 * 2 * 1 = 1, so (1 - 0.1)^2;
        // channel 1: 0.5 * (9 + 1) = 5, so (5 + 2)^2.
        let so = weight_scores(Criterion::TaylorSo, 2, &t);
        assert!(
            (so[0] - 0.81).abs() < 1e-6 && (so[1] - 49.0).abs() < 1e-6,
            "{so:?}"
        );
        let wn = weight_scores(Criterion::Weight, 2, &t);
        assert!(
            (wn[0] - 6.0).abs() < 1e-9 && (wn[1] - 13.25).abs() < 1e-9,
            "{wn:?}"
        );
    }
}
