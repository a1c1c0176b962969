//! Classification heads: penultimate features `[B, D]` -> logits `[B, C]`.
//!
//! Legend: `B` batch, `D` feature dimension, `C` classes. Every head lives in
//! its own file and implements [`HeadOps`]; [`HeadKind`] and [`Head`] are the
//! only registry. Formulas: field notes §2 (symmetrical layer) and §3.

mod softmax;
mod symmetrical;

pub use softmax::{SoftmaxHead, SoftmaxHeadConfig};
pub use symmetrical::{SymmetricalHead, SymmetricalHeadConfig};

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What every head offers to the trainer, the probe and the exports.
pub trait HeadOps<B: Backend> {
    /// Logits used for prediction and evaluation. `[B, D]` -> `[B, C]`.
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2>;

    /// Logits fed to the training loss. Margin heads change the target
    /// logit here; the default is [`HeadOps::logits`].
    fn train_logits(&self, features: Tensor<B, 2>, _labels: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        self.logits(features)
    }

    /// The class weight vectors `w_c` as rows, `[C, D]` (derived ones included).
    fn class_weights(&self) -> Tensor<B, 2>;

    /// The bias `[C]`, for heads that have one.
    fn bias(&self) -> Option<Tensor<B, 1>> {
        None
    }

    /// The learnable parameters behind derived weights (the symmetrical
    /// layer's `[2, D]` pair `v1, v2`), for export.
    fn derived_params(&self) -> Option<Tensor<B, 2>> {
        None
    }

    /// The logit scale `s` of cosine heads.
    fn scale(&self) -> Option<f64> {
        None
    }
}

/// The heads symfeat knows, by their CLI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// Linear layer with bias, plain softmax cross-entropy.
    Softmax,
    /// The paper's symmetrical layer (field notes §2).
    Symmetrical,
}

impl HeadKind {
    /// All names, for help texts and errors.
    pub const NAMES: &'static str = "softmax, symmetrical";

    /// Parse a CLI name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "softmax" => Self::Softmax,
            "symmetrical" | "symmetric" => Self::Symmetrical,
            _ => return None,
        })
    }

    /// Parameters and their defaults, for `--head-param` and `heads list`.
    pub fn params(self) -> &'static [(&'static str, f64, &'static str)] {
        match self {
            Self::Softmax => &[],
            Self::Symmetrical => &[("s", 16.0, "logit scale (the authors use 16)")],
        }
    }
}

/// A head choice with its parameters (`--head NAME --head-param k=v`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadSpec {
    /// Which head.
    pub kind: HeadKind,
    /// Parameter values by name; missing ones take the defaults.
    pub params: BTreeMap<String, f64>,
}

impl HeadSpec {
    /// Check the parameter names and values; returns the resolved map
    /// (defaults filled in).
    pub fn resolve(&self) -> Result<BTreeMap<String, f64>, String> {
        let known = self.kind.params();
        let mut out: BTreeMap<String, f64> =
            known.iter().map(|(k, v, _)| (k.to_string(), *v)).collect();
        for (k, v) in &self.params {
            if !out.contains_key(k) {
                let names: Vec<&str> = known.iter().map(|p| p.0).collect();
                return Err(format!(
                    "head {:?} has no parameter {k:?} (it takes: {})",
                    self.kind,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            }
            if !v.is_finite() {
                return Err(format!("head parameter {k} = {v} must be finite"));
            }
            out.insert(k.clone(), *v);
        }
        if let Some(&s) = out.get("s")
            && s <= 0.0
        {
            return Err(format!("head parameter s = {s} must be > 0"));
        }
        Ok(out)
    }

    /// Build the head for `d` features and `c` classes.
    pub fn init<B: Backend>(
        &self,
        d: usize,
        c: usize,
        device: &B::Device,
    ) -> Result<Head<B>, String> {
        let p = self.resolve()?;
        Ok(match self.kind {
            HeadKind::Softmax => Head::Softmax(SoftmaxHeadConfig::new(d, c).init(device)),
            HeadKind::Symmetrical => {
                if d < 2 || c < 2 {
                    return Err(format!(
                        "the symmetrical layer needs D >= 2 and C >= 2, got D = {d}, C = {c}"
                    ));
                }
                Head::Symmetrical(
                    SymmetricalHeadConfig::new(d, c)
                        .with_scale(p["s"])
                        .init(device),
                )
            }
        })
    }
}

/// One head of any kind.
#[derive(Module, Debug)]
pub enum Head<B: Backend> {
    /// See [`SoftmaxHead`].
    Softmax(SoftmaxHead<B>),
    /// See [`SymmetricalHead`].
    Symmetrical(SymmetricalHead<B>),
}

macro_rules! dispatch {
    ($self:ident, $h:ident => $e:expr) => {
        match $self {
            Head::Softmax($h) => $e,
            Head::Symmetrical($h) => $e,
        }
    };
}

impl<B: Backend> HeadOps<B> for Head<B> {
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        dispatch!(self, h => h.logits(features))
    }
    fn train_logits(&self, features: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        dispatch!(self, h => h.train_logits(features, labels))
    }
    fn class_weights(&self) -> Tensor<B, 2> {
        dispatch!(self, h => h.class_weights())
    }
    fn bias(&self) -> Option<Tensor<B, 1>> {
        dispatch!(self, h => h.bias())
    }
    fn derived_params(&self) -> Option<Tensor<B, 2>> {
        dispatch!(self, h => h.derived_params())
    }
    fn scale(&self) -> Option<f64> {
        dispatch!(self, h => h.scale())
    }
}

/// Mean cross-entropy of `logits [B, C]` against `labels [B]`.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [b, _] = logits.dims();
    let logp = log_softmax(logits, 1); // [B, C]
    let picked = logp.gather(1, labels.reshape([b, 1])); // [B, 1]
    picked.mean().neg()
}

/// Row-normalise `x [N, D]` with the same guard as PyTorch's
/// `F.normalize(eps = 1e-12)`: `x / max(|x|, eps)`. A zero row stays zero
/// (its cosines are 0, never NaN).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12); // [N, 1]
    x / norm
}
