//! Classification heads: penultimate features `[B, D]` -> logits `[B, C]`.
//!
//! Legend: `B` batch, `D` feature dimension, `C` classes. Every head lives in
//! its own file and implements [`HeadOps`]; [`HeadKind`] and [`Head`] are the
//! only registry. Formulas: field notes §2 (symmetrical layer) and §3.

mod arcface;
mod center;
mod combined;
mod cosface;
mod fixed;
pub mod margin;
mod normface;
mod softmax;
mod sphereface;
mod symmetrical;

pub use arcface::{ArcFaceHead, arcface_target};
pub use center::CenterLoss;
pub use combined::CombinedHead;
pub use cosface::CosFaceHead;
pub use fixed::{FixedHead, Layout, layout_weights};
pub use normface::NormFaceHead;
pub use softmax::{SoftmaxHead, SoftmaxHeadConfig};
pub use sphereface::{Lambda, SphereFaceHead, psi};
pub use symmetrical::{SymmetricalHead, SymmetricalHeadConfig, polygon_angles};

use burn::module::Param;
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
}

/// The heads symfeat knows, by their CLI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// Linear layer with bias, plain softmax cross-entropy.
    Softmax,
    /// NormFace: `s cos t_j`.
    Normface,
    /// SphereFace (A-Softmax) with lambda annealing.
    Sphereface,
    /// CosFace: `s (cos t_y - m)`.
    Cosface,
    /// ArcFace: `s cos(t_y + m)`.
    Arcface,
    /// Combined margin: `s (cos(m1 t_y + m2) - m3)`.
    Combined,
    /// Softmax with the center loss as an auxiliary term.
    Center,
    /// Fixed regular polygon (the symmetrical layout, frozen).
    Polygon,
    /// Fixed simplex ETF.
    Simplex,
    /// Fixed orthoplex (cross-polytope).
    Orthoplex,
    /// Fixed d-cube.
    Dcube,
    /// The paper's symmetrical layer (field notes §2).
    Symmetrical,
}

/// One parameter of a head: name, default, meaning.
pub type ParamDoc = (&'static str, f64, &'static str);

const SCALE_16: ParamDoc = ("s", 16.0, "logit scale");
const LEARN_SCALE: ParamDoc = ("learn_scale", 0.0, "1: learn s (initialised at s)");
const ROTATE: ParamDoc = (
    "rotate",
    0.0,
    "1: embed the layout in a random orthonormal basis instead of the first axes (same Gram matrix)",
);

impl HeadKind {
    /// Every head, in `heads list` order.
    pub const ALL: [HeadKind; 12] = [
        Self::Softmax,
        Self::Normface,
        Self::Sphereface,
        Self::Cosface,
        Self::Arcface,
        Self::Combined,
        Self::Center,
        Self::Polygon,
        Self::Simplex,
        Self::Orthoplex,
        Self::Dcube,
        Self::Symmetrical,
    ];

    /// All names, for help texts and errors.
    pub const NAMES: &'static str = "softmax, normface, sphereface, cosface, arcface, combined, center, \
                                     polygon, simplex, orthoplex, dcube, symmetrical";

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Normface => "normface",
            Self::Sphereface => "sphereface",
            Self::Cosface => "cosface",
            Self::Arcface => "arcface",
            Self::Combined => "combined",
            Self::Center => "center",
            Self::Polygon => "polygon",
            Self::Simplex => "simplex",
            Self::Orthoplex => "orthoplex",
            Self::Dcube => "dcube",
            Self::Symmetrical => "symmetrical",
        }
    }

    /// Parse a CLI name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "symmetric" => Some(Self::Symmetrical),
            "a-softmax" => Some(Self::Sphereface),
            "etf" => Some(Self::Simplex),
            _ => Self::ALL.into_iter().find(|k| k.name() == name),
        }
    }

    /// One line on what the head computes.
    pub fn formula(self) -> &'static str {
        match self {
            Self::Softmax => "w_j . x + b_j (linear layer with bias)",
            Self::Normface => "s cos t_j",
            Self::Sphereface => {
                "|x| psi(t_y), psi(t) = (-1)^k cos(m t) - 2k, k = floor(m t / pi); others |x| cos t_j"
            }
            Self::Cosface => "s (cos t_y - m); others s cos t_j",
            Self::Arcface => "s cos(t_y + m), s (cos t_y - m sin m) past pi; others s cos t_j",
            Self::Combined => "s (cos(m1 t_y + m2) - m3); others s cos t_j",
            Self::Center => {
                "softmax + center_weight/2 mean |x_i - c_y|^2, centers updated with center_lr"
            }
            Self::Polygon => "s cos(x, w_j), w fixed regular polygon in a random plane",
            Self::Simplex => "s cos(x, w_j), w fixed simplex ETF (cos -1/(C-1))",
            Self::Orthoplex => "s cos(x, w_j), w fixed +-e_i",
            Self::Dcube => "s cos(x, w_j), w fixed hypercube vertices",
            Self::Symmetrical => {
                "s cos(x, w_k), w_k = cos(2 pi k/C) n1 + sin(2 pi k/C) n2, plane learned"
            }
        }
    }

    /// Parameters and their defaults (angles in radians), for
    /// `--head-param` and `heads list`. Defaults follow the reference
    /// libraries (field notes §3).
    pub fn params(self) -> &'static [ParamDoc] {
        match self {
            Self::Softmax => &[],
            Self::Normface => &[SCALE_16],
            Self::Sphereface => &[
                ("m", 4.0, "integer angular margin (>= 1)"),
                (
                    "anneal",
                    1.0,
                    "1: lambda = max(lambda_min, lambda_base (1 + lambda_gamma it)^-lambda_power); 0: fixed lambda",
                ),
                (
                    "lambda",
                    0.0,
                    "fixed lambda (0 = pure A-Softmax); giving it turns annealing off",
                ),
                ("lambda_base", 1000.0, "annealing base"),
                ("lambda_gamma", 0.12, "annealing gamma"),
                ("lambda_power", 1.0, "annealing power"),
                ("lambda_min", 5.0, "annealing floor"),
            ],
            Self::Cosface => &[
                ("s", 64.0, "logit scale"),
                ("m", 0.35, "cosine margin, in [0, 1)"),
            ],
            Self::Arcface => &[
                ("s", 64.0, "logit scale"),
                ("m", 0.5, "angular margin in radians, in [0, pi/2)"),
                (
                    "easy_margin",
                    0.0,
                    "1: apply the margin only where cos t > 0",
                ),
                (
                    "detach_margin",
                    0.0,
                    "1: add the margin without gradient through it",
                ),
            ],
            Self::Combined => &[
                ("s", 64.0, "logit scale"),
                ("m1", 1.0, "multiplicative angular margin (> 0)"),
                ("m2", 0.3, "additive angular margin, radians, in [0, pi)"),
                ("m3", 0.2, "additive cosine margin, in [0, 1)"),
            ],
            Self::Center => &[
                ("center_weight", 0.01, "weight lambda of the center term"),
                ("center_lr", 0.5, "learning rate alpha of the centers"),
            ],
            Self::Polygon | Self::Simplex => &[SCALE_16, LEARN_SCALE],
            Self::Orthoplex | Self::Dcube => &[SCALE_16, LEARN_SCALE, ROTATE],
            Self::Symmetrical => &[
                SCALE_16,
                (
                    "p_max",
                    0.0,
                    "> 0: choose s as the smallest scale whose capped target probability reaches p_max (s=auto: 0.99)",
                ),
                LEARN_SCALE,
                (
                    "init",
                    0.0,
                    "plane initialisation: 0 = uniform (v1, v2 in U[0,1), the authors'), 1 = normal (zero-mean Gaussian N(0,1)); also init=uniform/normal",
                ),
            ],
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

fn flag(p: &BTreeMap<String, f64>, k: &str) -> Result<bool, String> {
    match p[k] {
        0.0 => Ok(false),
        1.0 => Ok(true),
        v => Err(format!("head parameter {k} = {v}: expected 0 or 1")),
    }
}

fn in_range(
    p: &BTreeMap<String, f64>,
    k: &str,
    lo: f64,
    hi: f64,
    lo_open: bool,
    what: &str,
) -> Result<f64, String> {
    let v = p[k];
    let ok = if lo_open { v > lo } else { v >= lo } && v < hi;
    if ok {
        Ok(v)
    } else {
        Err(format!("head parameter {k} = {v}: expected {what}"))
    }
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
                    "head {} has no parameter {k:?} (it takes: {})",
                    self.kind.name(),
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
        if out.contains_key("s") {
            in_range(&out, "s", 0.0, 1e4, true, "a scale in (0, 10000)")?;
        }
        for k in [
            "easy_margin",
            "detach_margin",
            "learn_scale",
            "anneal",
            "rotate",
            "init",
        ] {
            if out.contains_key(k) {
                flag(&out, k)?;
            }
        }
        match self.kind {
            HeadKind::Sphereface => {
                // An explicit lambda means a fixed lambda: annealing would
                // silently replace it. Both explicit and contradictory: an error.
                if self.params.contains_key("lambda") {
                    match self.params.get("anneal") {
                        Some(&a) if a != 0.0 => {
                            return Err(format!(
                                "head parameters lambda = {} and anneal = {a} contradict each other: \
                                 a given lambda is a fixed lambda (anneal = 0); drop one of them",
                                out["lambda"]
                            ));
                        }
                        _ => {
                            out.insert("anneal".into(), 0.0);
                        }
                    }
                }
                let m = out["m"];
                if m.fract() != 0.0 || !(1.0..=10.0).contains(&m) {
                    return Err(format!(
                        "head parameter m = {m}: SphereFace needs an integer m in 1..=10"
                    ));
                }
                for k in [
                    "lambda",
                    "lambda_base",
                    "lambda_power",
                    "lambda_min",
                    "lambda_gamma",
                ] {
                    in_range(&out, k, 0.0, f64::INFINITY, false, "a number >= 0")?;
                }
            }
            HeadKind::Cosface => {
                in_range(&out, "m", 0.0, 1.0, false, "a cosine margin in [0, 1)")?;
            }
            HeadKind::Arcface => {
                in_range(
                    &out,
                    "m",
                    0.0,
                    std::f64::consts::FRAC_PI_2,
                    false,
                    "an angle in [0, pi/2) radians",
                )?;
            }
            HeadKind::Combined => {
                in_range(&out, "m1", 0.0, 10.0, true, "a factor in (0, 10)")?;
                in_range(
                    &out,
                    "m2",
                    0.0,
                    std::f64::consts::PI,
                    false,
                    "an angle in [0, pi) radians",
                )?;
                in_range(&out, "m3", 0.0, 1.0, false, "a cosine margin in [0, 1)")?;
            }
            HeadKind::Center => {
                in_range(
                    &out,
                    "center_weight",
                    0.0,
                    f64::INFINITY,
                    false,
                    "a weight >= 0",
                )?;
                in_range(
                    &out,
                    "center_lr",
                    0.0,
                    f64::INFINITY,
                    false,
                    "a learning rate >= 0",
                )?;
            }
            HeadKind::Symmetrical => {
                in_range(
                    &out,
                    "p_max",
                    0.0,
                    1.0,
                    false,
                    "0 (off) or a probability in (1/C, 1)",
                )?;
            }
            _ => {}
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
        if c < 2 {
            return Err(format!("a head needs at least 2 classes, got {c}"));
        }
        let s = p.get("s").copied().unwrap_or(1.0);
        let learn = p.contains_key("learn_scale") && flag(&p, "learn_scale")?;
        Ok(match self.kind {
            HeadKind::Softmax | HeadKind::Center => {
                Head::Softmax(SoftmaxHeadConfig::new(d, c).init(device))
            }
            HeadKind::Normface => Head::Normface(NormFaceHead::new(d, c, s, device)),
            HeadKind::Cosface => Head::Cosface(CosFaceHead::new(d, c, s, p["m"], device)),
            HeadKind::Arcface => Head::Arcface(ArcFaceHead::new(
                d,
                c,
                s,
                p["m"],
                flag(&p, "easy_margin")?,
                flag(&p, "detach_margin")?,
                device,
            )),
            HeadKind::Combined => Head::Combined(CombinedHead::new(
                d, c, s, p["m1"], p["m2"], p["m3"], device,
            )),
            HeadKind::Sphereface => {
                let lambda = Lambda {
                    anneal: flag(&p, "anneal")?,
                    fixed: p["lambda"],
                    base: p["lambda_base"],
                    gamma: p["lambda_gamma"],
                    power: p["lambda_power"],
                    min: p["lambda_min"],
                };
                Head::Sphereface(SphereFaceHead::new(d, c, p["m"] as usize, lambda, device))
            }
            HeadKind::Polygon | HeadKind::Simplex | HeadKind::Orthoplex | HeadKind::Dcube => {
                let layout = match self.kind {
                    HeadKind::Polygon => Layout::Polygon,
                    HeadKind::Simplex => Layout::Simplex,
                    HeadKind::Orthoplex => Layout::Orthoplex,
                    _ => Layout::Dcube,
                };
                let rotate = p.contains_key("rotate") && flag(&p, "rotate")?;
                Head::Fixed(FixedHead::new(
                    layout,
                    d,
                    c,
                    rotate,
                    ScaleParam::new(s, learn, device),
                    device,
                )?)
            }
            HeadKind::Symmetrical => {
                if d < 2 {
                    return Err(format!(
                        "the symmetrical layer needs D >= 2 and C >= 2, got D = {d}, C = {c}"
                    ));
                }
                if p["p_max"] > 0.0 && p["p_max"] <= 1.0 / c as f64 {
                    return Err(format!(
                        "head parameter p_max = {}: must exceed 1/C = {:.4} (uniform probability)",
                        p["p_max"],
                        1.0 / c as f64
                    ));
                }
                let s = if p["p_max"] > 0.0 {
                    crate::geometry::polygon::scale_for_p_max(c, p["p_max"])
                        .map_err(|e| format!("head parameter p_max: {e}"))?
                } else {
                    s
                };
                Head::Symmetrical(
                    SymmetricalHeadConfig::new(d, c)
                        .with_scale(s)
                        .with_learn_scale(learn)
                        .with_normal_init(flag(&p, "init")?)
                        .init(device),
                )
            }
        })
    }

    /// The center-loss settings `(weight, lr)` of this head, if any.
    pub fn center(&self) -> Option<(f64, f64)> {
        let p = self.resolve().ok()?;
        (self.kind == HeadKind::Center).then(|| (p["center_weight"], p["center_lr"]))
    }
}

/// A logit scale, fixed or learnable (`learn_scale = 1`).
#[derive(Module, Debug)]
pub struct ScaleParam<B: Backend> {
    fixed: f64,
    learned: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> ScaleParam<B> {
    /// A scale starting at `s`, learned or not.
    pub fn new(s: f64, learn: bool, device: &B::Device) -> Self {
        let learned = learn.then(|| Param::from_tensor(Tensor::from_floats([s as f32], device)));
        Self { fixed: s, learned }
    }

    /// `logits * s`.
    pub fn apply(&self, logits: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.learned {
            Some(p) => logits * p.val().unsqueeze::<2>(),
            None => logits * self.fixed,
        }
    }

    /// The current value of s.
    pub fn value(&self) -> f64 {
        match &self.learned {
            Some(p) => {
                let v: f32 = p.val().into_scalar().elem();
                v as f64
            }
            None => self.fixed,
        }
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

impl<B: Backend> Head<B> {
    /// Replace the learnable class weights `[C, D]` of a cosine or margin
    /// head (NormFace, SphereFace, CosFace, ArcFace, combined); other heads
    /// are left unchanged.
    pub fn set_cosine_weights(&mut self, w: Tensor<B, 2>) {
        let slot = match self {
            Head::Normface(h) => &mut h.weights,
            Head::Sphereface(h) => &mut h.weights,
            Head::Cosface(h) => &mut h.weights,
            Head::Arcface(h) => &mut h.weights,
            Head::Combined(h) => &mut h.weights,
            _ => return,
        };
        slot.weight = Param::from_tensor(w);
    }
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

#[cfg(test)]
mod tests;
