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
//! - `weight`: `sum_s w_s^2` over the same weights (the code's method 2);
//! - `random`: uniform scores, drawn again at every pruning round.
//!
//! `taylor-so` (the second-order form with the Hessian diagonal) is not
//! implemented: burn has no second derivatives, and an estimator of the
//! diagonal (Hutchinson with finite differences) was not built yet.

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
    /// `sum w^2` over the unit's weights.
    #[serde(rename = "weight")]
    Weight,
    /// Uniform random.
    #[serde(rename = "random")]
    Random,
}

impl Criterion {
    /// Every criterion, for help texts and the oracle.
    pub const ALL: [Criterion; 4] = [Self::TaylorFoBn, Self::TaylorFo, Self::Weight, Self::Random];

    /// Parse a CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::TaylorFoBn => "taylor-fo-bn",
            Self::TaylorFo => "taylor-fo",
            Self::Weight => "weight",
            Self::Random => "random",
        }
    }

    /// The names, for errors.
    pub fn names() -> String {
        let mut v: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
        v.push("(taylor-so: not implemented)");
        v.join(", ")
    }

    /// Needs the gates' gradient.
    pub fn needs_gate_grad(self) -> bool {
        self == Self::TaylorFoBn
    }

    /// Needs the producers' weights (and, for `taylor-fo`, their gradients).
    pub fn needs_weights(self) -> bool {
        matches!(self, Self::TaylorFo | Self::Weight)
    }
}

/// One producer tensor of a group: its values, their loss gradient, and
/// the index lists of its output channels.
pub struct UnitWeights<'a> {
    /// Flat values.
    pub w: &'a [f32],
    /// Their gradient, where the criterion needs it.
    pub g: Option<&'a [f32]>,
    /// Per channel, the indices into `w`.
    pub channels: Vec<Vec<usize>>,
}

/// The unit scores of a group from its producers' tensors, `taylor-fo` or
/// `weight`.
pub fn weight_scores(criterion: Criterion, channels: usize, tensors: &[UnitWeights<'_>]) -> Vec<f64> {
    let mut first = vec![0.0f64; channels];
    let mut norm = vec![0.0f64; channels];
    for UnitWeights { w, g, channels: chans } in tensors {
        for (k, idx) in chans.iter().enumerate().take(channels) {
            for &i in idx {
                let wi = w[i] as f64;
                norm[k] += wi * wi;
                if let Some(g) = g {
                    first[k] += g[i] as f64 * wi;
                }
            }
        }
    }
    match criterion {
        Criterion::TaylorFo => first.iter().map(|s| s * s).collect(),
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
        assert_eq!(Criterion::parse("taylor-so"), None);
        // Two channels of two weights each, and a bias.
        let w = [1.0f32, -2.0, 3.0, 0.5];
        let g = [0.5f32, 0.25, -1.0, 2.0];
        let b = [1.0f32, 2.0];
        let bg = [0.1f32, 0.0];
        let t = [
            UnitWeights {
                w: &w,
                g: Some(&g),
                channels: vec![vec![0, 1], vec![2, 3]],
            },
            UnitWeights {
                w: &b,
                g: Some(&bg),
                channels: vec![vec![0], vec![1]],
            },
        ];
        let fo = weight_scores(Criterion::TaylorFo, 2, &t);
        // channel 0: 0.5 - 0.5 + 0.1 = 0.1; channel 1: -3 + 1 + 0 = -2
        assert!((fo[0] - 0.01).abs() < 1e-9 && (fo[1] - 4.0).abs() < 1e-9, "{fo:?}");
        let wn = weight_scores(Criterion::Weight, 2, &t);
        assert!((wn[0] - 6.0).abs() < 1e-9 && (wn[1] - 13.25).abs() < 1e-9, "{wn:?}");
    }
}
