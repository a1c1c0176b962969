//! Fixed classifiers: class weights set once and never trained (field notes
//! §3, RePoNet and the simplex ETF), logits `s cos(x, w_j)` with a fixed or
//! learnable scale s.
//!
//! Layouts (`src/geometry/polygon.rs` builds them in f64):
//! - `polygon`: the symmetrical layer's regular polygon in the plane of two
//!   random vectors (uniform [0, 1), as the layer's initialisation), frozen;
//! - `simplex`: the simplex ETF `sqrt(C/(C-1)) P (I - 11^T/C)`, P a random
//!   orthonormal D x C (needs D >= C); pairwise cosine -1/(C-1);
//! - `orthoplex`: ±e_i on the first ceil(C/2) axes (needs D >= ceil(C/2));
//! - `dcube`: vertices of a hypercube on the first ceil(log2 C) axes.
//!
//! `rotate = 1` moves the orthoplex or d-cube from the first axes into a
//! random orthonormal basis (same Gram matrix). On ReLU features the axis
//! layout can die: the ReLU zeroes those few coordinates for every sample,
//! every cosine is 0 and no gradient comes back (measured, README).

use super::params::{
    Check, HeadDesc, HeadError, LEARN_SCALE, ParamDef, Params, SCALE_16, no_check,
};
use super::{Head, HeadOps, ScaleParam, l2_normalize};
use crate::geometry::{Matrix, polygon};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;

/// Which fixed layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Regular polygon in a random plane.
    Polygon,
    /// Simplex equiangular tight frame.
    Simplex,
    /// Cross-polytope vertices.
    Orthoplex,
    /// Hypercube vertices.
    Dcube,
}

/// A fixed classifier.
#[derive(Module, Debug)]
pub struct FixedHead<B: Backend> {
    /// Unit rows `w_c`, `[C, D]`, never updated (no gradient flows to them).
    weights: Param<Tensor<B, 2>>,
    scale: ScaleParam<B>,
}

/// A tensor's values on the host, as f64; an error (never zeros) when the
/// device cannot give them back.
fn host<B: Backend>(t: Tensor<B, 2>) -> Result<Matrix, HeadError> {
    let [r, c] = t.dims();
    let v: Vec<f32> = t.into_data().convert::<f32>().to_vec().map_err(|e| {
        HeadError::Other(format!(
            "cannot read the random layout from the device: {e:?}"
        ))
    })?;
    Ok(Matrix::from_f32(r, c, &v)?)
}

/// Build the layout's `[C, D]` weights (random parts from the backend's seeded RNG).
pub fn layout_weights<B: Backend>(
    layout: Layout,
    d: usize,
    c: usize,
    rotate: bool,
    device: &B::Device,
) -> Result<Matrix, HeadError> {
    let err = HeadError::from;
    match layout {
        Layout::Polygon => {
            if d < 2 {
                return Err(HeadError::Other(format!(
                    "the polygon layout needs a plane, D >= 2, got D = {d}"
                )));
            }
            let v = host(Tensor::<B, 2>::random(
                [2, d],
                Distribution::Uniform(0.0, 1.0),
                device,
            ))?;
            polygon::polygon_weights(v.row(0), v.row(1), c).map_err(err)
        }
        Layout::Simplex => {
            if d < c {
                return Err(HeadError::Other(format!(
                    "the simplex ETF needs D >= C, got D = {d}, C = {c}"
                )));
            }
            let r = host(Tensor::<B, 2>::random(
                [d, c],
                Distribution::Normal(0.0, 1.0),
                device,
            ))?;
            polygon::simplex_etf(c, &r).map_err(err)
        }
        Layout::Orthoplex | Layout::Dcube => {
            let (w, k) = if layout == Layout::Orthoplex {
                (polygon::orthoplex_weights(c, d), polygon::orthoplex_axes(c))
            } else {
                (polygon::dcube_weights(c, d), polygon::dcube_axes(c))
            };
            let w = w.map_err(err)?;
            if !rotate {
                return Ok(w);
            }
            let r = host(Tensor::<B, 2>::random(
                [d, k],
                Distribution::Normal(0.0, 1.0),
                device,
            ))?;
            polygon::embed_in_random_basis(&w, &r).map_err(err)
        }
    }
}

impl<B: Backend> FixedHead<B> {
    /// Build the layout for `d` features and `c` classes.
    pub fn new(
        layout: Layout,
        d: usize,
        c: usize,
        rotate: bool,
        scale: ScaleParam<B>,
        device: &B::Device,
    ) -> Result<Self, HeadError> {
        let w = layout_weights::<B>(layout, d, c, rotate, device)?;
        let data: Vec<f32> = w.as_slice().iter().map(|&v| v as f32).collect();
        let t = Tensor::<B, 1>::from_floats(data.as_slice(), device).reshape([c, d]);
        Ok(Self {
            weights: Param::from_tensor(l2_normalize(t)),
            scale,
        })
    }
}

impl<B: Backend> HeadOps<B> for FixedHead<B> {
    fn load_weights(
        &mut self,
        _weights: Tensor<B, 2>,
        _bias: Option<Tensor<B, 1>>,
    ) -> Result<(), HeadError> {
        Err(HeadError::Other(
            "fixed classifiers build their own weights; evaluate them as normface with the same s"
                .into(),
        ))
    }
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        let w = self.weights.val().detach();
        self.scale
            .apply(l2_normalize(features).matmul(w.transpose()))
    }
    fn class_weights(&self) -> Tensor<B, 2> {
        self.weights.val().detach()
    }
    fn scale(&self) -> Option<f64> {
        Some(self.scale.value())
    }
}

const ROTATE: ParamDef = ParamDef {
    name: "rotate",
    default: 0.0,
    doc: "1: embed the layout in a random orthonormal basis instead of the first axes (same Gram matrix)",
    check: Check::Flag,
};

/// A fixed layout's description.
const fn desc(
    name: &'static str,
    aliases: &'static [&'static str],
    formula: &'static str,
    params: &'static [ParamDef],
) -> HeadDesc {
    HeadDesc {
        name,
        aliases,
        formula,
        params,
        cosine: true,
        learned: false,
        check: no_check,
    }
}

/// Build the fixed head of `layout`.
fn init<B: Backend>(
    layout: Layout,
    p: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    let rotate = p.values().contains_key("rotate") && p.flag("rotate");
    let scale = ScaleParam::new(p["s"], p.flag("learn_scale"), device);
    Ok(Head::Fixed(FixedHead::new(
        layout, d, c, rotate, scale, device,
    )?))
}

/// One module per fixed layout, as the registry wants (`DESC`, `init`).
macro_rules! fixed_head {
    ($module:ident, $layout:ident, $name:literal, $aliases:expr, $formula:literal, $params:expr) => {
        #[doc = concat!("`", $name, "`: ", $formula, ".")]
        pub(super) mod $module {
            use super::*;
            /// Its description.
            pub(in crate::heads) const DESC: HeadDesc = desc($name, $aliases, $formula, $params);
            /// Build it.
            pub(in crate::heads) fn init<B: Backend>(
                p: &Params,
                d: usize,
                c: usize,
                device: &B::Device,
            ) -> Result<Head<B>, HeadError> {
                super::init(Layout::$layout, p, d, c, device)
            }
        }
    };
}

fixed_head!(
    polygon_head,
    Polygon,
    "polygon",
    &[],
    "s cos(x, w_j), w fixed regular polygon in a random plane",
    &[SCALE_16, LEARN_SCALE]
);
fixed_head!(
    simplex_head,
    Simplex,
    "simplex",
    &["etf"],
    "s cos(x, w_j), w fixed simplex ETF (cos -1/(C-1))",
    &[SCALE_16, LEARN_SCALE]
);
fixed_head!(
    orthoplex_head,
    Orthoplex,
    "orthoplex",
    &[],
    "s cos(x, w_j), w fixed +-e_i",
    &[SCALE_16, LEARN_SCALE, ROTATE]
);
fixed_head!(
    dcube_head,
    Dcube,
    "dcube",
    &[],
    "s cos(x, w_j), w fixed hypercube vertices",
    &[SCALE_16, LEARN_SCALE, ROTATE]
);
