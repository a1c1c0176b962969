//! Binary networks (ReCU, Xu et al., ICCV 2021; field notes §8.2): the tau
//! schedule, the paper's diagnostics, and bit-packed inference.
//!
//! The binary layers and backbones themselves live in
//! [`crate::nets::binary`]; the trainer sets tau per epoch
//! ([`tau`]) and logs [`diagnostics`] per epoch; [`packed`] exports a trained
//! binary model with its signs packed 64 per word and runs its binary
//! layers with XNOR + popcount ([`crate::kernels::bitconv`]).

pub mod diagnostics;
pub mod packed;

use crate::nets::{Backbone, BinaryLayer};
use anyhow::{Context, Result};
use burn::prelude::*;

/// ReCU's tau at `epoch` (0-based) of `epochs`: `A e^(t/T) + B` with
/// `t = epoch`, `T = epochs`, `A = (max - min) / (e - 1)`, `B = min - A`,
/// as the authors' `model_params_update` (so tau starts at `min` and
/// approaches `max`, reached at `t = T`, just after the last epoch).
pub fn tau(epoch: usize, epochs: usize, (min, max): (f64, f64)) -> f64 {
    let e = std::f64::consts::E;
    let a = (max - min) / (e - 1.0);
    let b = min - a;
    a * (epoch as f64 / epochs.max(1) as f64).exp() + b
}

/// The latent weights of one binary layer as `[O, K]` rows, on the host.
#[derive(Debug, Clone)]
pub struct LayerRows {
    /// The layer's name in the backbone.
    pub name: String,
    /// Output channels O.
    pub rows: usize,
    /// Weights per output channel K.
    pub k: usize,
    /// Row-major `[O, K]`.
    pub w: Vec<f32>,
}

/// The binary layers' latent weights of `net` (none for a float net).
pub fn layer_rows<B: Backend>(net: &Backbone<B>) -> Result<Vec<LayerRows>> {
    net.binary_layers()
        .into_iter()
        .map(|(name, layer)| {
            let t = layer.weight_rows();
            let [rows, k] = t.dims();
            let w = floats(t.into_data()).with_context(|| format!("weights of {name}"))?;
            Ok(LayerRows { name, rows, k, w })
        })
        .collect()
}

/// alpha of each binary layer of `net`, in [`Backbone::binary_layers`] order.
pub fn alphas<B: Backend>(net: &Backbone<B>) -> Result<Vec<Vec<f32>>> {
    net.binary_layers()
        .into_iter()
        .map(|(name, layer): (String, BinaryLayer<'_, B>)| {
            floats(layer.alpha().into_data()).with_context(|| format!("alpha of {name}"))
        })
        .collect()
}

fn floats(d: burn::tensor::TensorData) -> Result<Vec<f32>> {
    d.convert::<f32>()
        .to_vec()
        .map_err(|e| anyhow::anyhow!("cannot read a tensor back from the device: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tau's closed form: min at the first epoch, max at t = T, and
    /// `A e^(t/T) + B` between (an independent evaluation).
    #[test]
    fn tau_schedule_closed_form() {
        let (lo, hi) = (0.85, 0.99);
        assert!((tau(0, 30, (lo, hi)) - lo).abs() < 1e-12);
        assert!((tau(30, 30, (lo, hi)) - hi).abs() < 1e-12);
        let t = tau(12, 30, (lo, hi));
        let want = (hi - lo) / (std::f64::consts::E - 1.0) * ((12.0f64 / 30.0).exp() - 1.0) + lo;
        assert!((t - want).abs() < 1e-12, "{t} {want}");
        // Rising, convex.
        let v: Vec<f64> = (0..=30).map(|e| tau(e, 30, (lo, hi))).collect();
        assert!(v.windows(2).all(|p| p[1] > p[0]));
        assert!(v.windows(3).all(|p| p[2] - p[1] > p[1] - p[0]));
        assert_eq!(tau(3, 10, (0.9, 0.9)), 0.9);
    }
}
