//! Classification heads: penultimate features `[B, D]` -> logits `[B, C]`.
//!
//! Legend: `B` batch, `D` feature dimension, `C` classes. Every head lives in
//! its own file: its description (`DESC`: name, formula, parameters with
//! defaults and checks), its `init`, and its module implementing
//! [`HeadOps`] (weights loading included). [`registry!`] below is the one
//! list of heads; [`Head`] the one list of the modules they build. Formulas:
//! field notes §2 (symmetrical layer) and §3.
//!
//! A new head: its file, a `mod` line, and a line in `registry!` (and, if
//! it brings a new module type, a variant of [`Head`] and a line in
//! `dispatch!`).

mod arcface;
mod center;
mod combined;
mod cosface;
pub mod evaluate;
mod fixed;
pub mod margin;
mod normface;
pub mod params;
mod softmax;
mod spec;
mod sphereface;
mod symmetrical;

pub use arcface::{ArcFaceHead, arcface_target};
pub use center::CenterLoss;
pub use combined::CombinedHead;
pub use cosface::CosFaceHead;
pub use fixed::{FixedHead, Layout, layout_weights};
pub use margin::{ScaleParam, l2_normalize};
pub use normface::NormFaceHead;
pub use params::{HeadDesc, HeadError, ParamDef, Params};
pub use softmax::{SoftmaxHead, SoftmaxHeadConfig};
pub use spec::HeadSpec;
pub use sphereface::{Lambda, SphereFaceHead, psi};
pub use symmetrical::{SymmetricalHead, SymmetricalHeadConfig, polygon_angles};

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

/// What every head offers to the trainer, the probe and the exports.
pub trait HeadOps<B: Backend> {
    /// Logits used for prediction and evaluation. `[B, D]` -> `[B, C]`.
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2>;

    /// Logits fed to the training loss. Margin heads change the target
    /// logit here; the default is [`HeadOps::logits`].
    /// `step` is the optimizer step (SphereFace's lambda annealing).
    fn train_logits(
        &self,
        features: Tensor<B, 2>,
        _labels: Tensor<B, 1, Int>,
        _step: usize,
    ) -> Tensor<B, 2> {
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

    /// Replace the weights by given ones (`symfeat heads eval`, a PyTorch
    /// user's weights): `weights` as [`HeadOps::class_weights`] returns them
    /// (the symmetrical layer: its `[2, D]` plane `v1, v2`), `bias` `[C]`
    /// for the heads that have one. Shapes must match the built head.
    fn load_weights(
        &mut self,
        weights: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Result<(), HeadError>;
}

/// The heads, in `heads list` order: `Kind => file`. Generates
/// [`HeadKind`], its list, its descriptions and its constructors.
macro_rules! registry {
    ($($kind:ident => $($file:ident)::+),+ $(,)?) => {
        /// The heads symfeat knows, by their CLI names (see each head's file).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum HeadKind {
            $(
                #[doc = concat!("See `", stringify!($($file)::+), "`.")]
                $kind,
            )+
        }

        impl HeadKind {
            /// Every head, in `heads list` order.
            pub const ALL: &'static [HeadKind] = &[$(Self::$kind),+];

            /// What the head's file says about it.
            pub fn desc(self) -> &'static HeadDesc {
                match self {
                    $(Self::$kind => &$($file)::+::DESC,)+
                }
            }

            pub(super) fn build<B: Backend>(
                self,
                p: &Params,
                d: usize,
                c: usize,
                device: &B::Device,
            ) -> Result<Head<B>, HeadError> {
                match self {
                    $(Self::$kind => $($file)::+::init(p, d, c, device),)+
                }
            }
        }
    };
}

registry! {
    Softmax => softmax,
    Normface => normface,
    Sphereface => sphereface,
    Cosface => cosface,
    Arcface => arcface,
    Combined => combined,
    Center => center,
    Polygon => fixed::polygon_head,
    Simplex => fixed::simplex_head,
    Orthoplex => fixed::orthoplex_head,
    Dcube => fixed::dcube_head,
    Symmetrical => symmetrical,
}

impl HeadKind {
    /// All names, for help texts and errors ("softmax, normface, ...").
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        self.desc().name
    }

    /// Parse a CLI name or alias.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name || k.desc().aliases.contains(&name))
    }

    /// One line on what the head computes.
    pub fn formula(self) -> &'static str {
        self.desc().formula
    }

    /// Parameters and their defaults (angles in radians), for
    /// `--head-param` and `heads list`.
    pub fn params(self) -> &'static [ParamDef] {
        self.desc().params
    }
}

/// One head of any kind.
#[derive(Module, Debug)]
pub enum Head<B: Backend> {
    /// See [`SoftmaxHead`].
    Softmax(SoftmaxHead<B>),
    /// See [`NormFaceHead`].
    Normface(NormFaceHead<B>),
    /// See [`SphereFaceHead`].
    Sphereface(SphereFaceHead<B>),
    /// See [`CosFaceHead`].
    Cosface(CosFaceHead<B>),
    /// See [`ArcFaceHead`].
    Arcface(ArcFaceHead<B>),
    /// See [`CombinedHead`].
    Combined(CombinedHead<B>),
    /// See [`FixedHead`].
    Fixed(FixedHead<B>),
    /// See [`SymmetricalHead`].
    Symmetrical(SymmetricalHead<B>),
}

macro_rules! dispatch {
    ($self:ident, $h:ident => $e:expr) => {
        match $self {
            Head::Softmax($h) => $e,
            Head::Normface($h) => $e,
            Head::Sphereface($h) => $e,
            Head::Cosface($h) => $e,
            Head::Arcface($h) => $e,
            Head::Combined($h) => $e,
            Head::Fixed($h) => $e,
            Head::Symmetrical($h) => $e,
        }
    };
}

impl<B: Backend> HeadOps<B> for Head<B> {
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        dispatch!(self, h => h.logits(features))
    }
    fn train_logits(
        &self,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        step: usize,
    ) -> Tensor<B, 2> {
        dispatch!(self, h => h.train_logits(features, labels, step))
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
    fn load_weights(
        &mut self,
        weights: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Result<(), HeadError> {
        dispatch!(self, h => h.load_weights(weights, bias))
    }
}

/// Mean cross-entropy of `logits [B, C]` against `labels [B]`.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [b, _] = logits.dims();
    let logp = log_softmax(logits, 1); // [B, C]
    let picked = logp.gather(1, labels.reshape([b, 1])); // [B, 1]
    picked.mean().neg()
}

#[cfg(test)]
mod tests;
