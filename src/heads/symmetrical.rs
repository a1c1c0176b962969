//! The symmetrical layer of "Do Neural Network Weights account for Classes
//! Centers?" (Kansizoglou et al., IEEE TNNLS 2022), field notes §2.
//!
//! Two learnable vectors `v1, v2` (initialised uniform in [0, 1) as in the
//! authors' code) span a plane; Gram-Schmidt gives its orthonormal basis
//! `n1, n2`, and the class weights are the regular polygon
//! `w_k = cos(2 pi k / C) n1 + sin(2 pi k / C) n2`: unit, coplanar, summing
//! to zero. Logits are `s cos(x, w_k)` with no bias (s = 16 by default).
//!
//! The authors build `w_k` as `R_k n1` with C full D x D rotation matrices;
//! the closed form here is the same vector in O(C D) (tested against `R_k`).
//!
//! Guard: `|u| -> 0` (v2 parallel to v1) would divide by zero; like
//! `F.normalize`, the norms are clamped at 1e-12, so the weights then
//! collapse to `cos(theta_k) n1` instead of becoming NaN.

use super::{HeadOps, l2_normalize};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use std::f64::consts::PI;

/// Builds a [`SymmetricalHead`].
#[derive(Config, Debug)]
pub struct SymmetricalHeadConfig {
    /// Feature dimension D (>= 2).
    pub features: usize,
    /// Classes C (>= 2).
    pub classes: usize,
    /// Logit scale s.
    #[config(default = 16.0)]
    pub scale: f64,
}

/// The symmetrical layer.
#[derive(Module, Debug)]
pub struct SymmetricalHead<B: Backend> {
    /// First plane vector `v1` `[D]`.
    pub v1: Param<Tensor<B, 1>>,
    /// Second plane vector `v2` `[D]`.
    pub v2: Param<Tensor<B, 1>>,
    scale: f64,
    classes: usize,
}

impl SymmetricalHeadConfig {
    /// Build on `device` with the authors' initialisation (uniform [0, 1)).
    pub fn init<B: Backend>(&self, device: &B::Device) -> SymmetricalHead<B> {
        let init = || {
            Param::from_tensor(Tensor::random(
                [self.features],
                Distribution::Uniform(0.0, 1.0),
                device,
            ))
        };
        SymmetricalHead {
            v1: init(),
            v2: init(),
            scale: self.scale,
            classes: self.classes,
        }
    }
}

/// `cos(2 pi k / C)` and `sin(2 pi k / C)` for k = 0..C-1.
pub fn polygon_angles(classes: usize) -> (Vec<f32>, Vec<f32>) {
    (0..classes)
        .map(|k| {
            let t = 2.0 * PI * k as f64 / classes as f64;
            (t.cos() as f32, t.sin() as f32)
        })
        .unzip()
}

impl<B: Backend> SymmetricalHead<B> {
    /// Gram-Schmidt basis `(n1, n2)` of the plane of `v1, v2`, each `[1, D]`.
    pub fn basis(&self) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let v1 = self.v1.val().unsqueeze::<2>(); // [1, D]
        let v2 = self.v2.val().unsqueeze::<2>();
        let n1 = l2_normalize(v1);
        let proj = (n1.clone() * v2.clone()).sum_dim(1); // [1, 1] = n1 . v2
        let u = v2 - n1.clone() * proj;
        (n1, l2_normalize(u))
    }

    /// The logit scale s.
    pub fn scale_value(&self) -> f64 {
        self.scale
    }
}

impl<B: Backend> HeadOps<B> for SymmetricalHead<B> {
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        let w = self.class_weights(); // [C, D], unit rows
        l2_normalize(features).matmul(w.transpose()) * self.scale
    }

    fn class_weights(&self) -> Tensor<B, 2> {
        let (n1, n2) = self.basis();
        let device = n1.device();
        let (cos, sin) = polygon_angles(self.classes);
        let c = self.classes;
        let cos = Tensor::<B, 1>::from_floats(cos.as_slice(), &device).reshape([c, 1]);
        let sin = Tensor::<B, 1>::from_floats(sin.as_slice(), &device).reshape([c, 1]);
        cos * n1 + sin * n2 // [C, 1] * [1, D] -> [C, D]
    }

    fn derived_params(&self) -> Option<Tensor<B, 2>> {
        Some(Tensor::stack(vec![self.v1.val(), self.v2.val()], 0))
    }

    fn scale(&self) -> Option<f64> {
        Some(self.scale)
    }
}
