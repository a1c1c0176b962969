//! The MLP, binary: fc 256 (float) - BN1d - hardtanh - **binary** fc 128 -
//! BN1d - hardtanh (the last only with `feature_act = relu`).

use super::super::BatchNorm2d;
use super::super::layers::{LayerRef, WeightTransform, linear, linear_macs};
use super::{Binarize, BinaryLayer, BinaryLinear, SetTau, hardtanh};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

/// The binary MLP.
#[derive(Module, Debug)]
pub struct BinaryMlp<B: Backend> {
    fc1: Linear<B>,
    bn1: BatchNorm2d<B>,
    fc2: BinaryLinear<B>,
    bn2: BatchNorm2d<B>,
    final_act: bool,
}

impl<B: Backend> BinaryMlp<B> {
    /// `input` = Ch x H x W, hidden 256, `features` = D; `mode`: sign, recu or the float control.
    pub fn new(
        input: usize,
        features: usize,
        final_act: bool,
        mode: Binarize,
        device: &B::Device,
    ) -> Self {
        Self {
            fc1: LinearConfig::new(input, 256).init(device),
            bn1: BatchNorm2d::new(256, device),
            fc2: BinaryLinear::new(256, features, mode, device),
            bn2: BatchNorm2d::new(features, device),
            final_act,
        }
    }

    /// # Shapes
    /// `[B, Ch, H, W]` -> `[B, D]`.
    pub fn forward_with(&self, images: Tensor<B, 4>, t: &dyn WeightTransform<B>) -> Tensor<B, 2> {
        let at = LayerRef {
            name: "fc1",
            first: true,
        };
        let x = linear(&self.fc1, images.flatten(1, 3), t, at);
        let x = hardtanh(self.bn1.forward_features(x));
        let x = self.bn2.forward_features(self.fc2.forward(x, t, "fc2"));
        if self.final_act { hardtanh(x) } else { x }
    }

    /// Multiply-accumulates of one image.
    pub fn macs(&self) -> u64 {
        linear_macs(&self.fc1) + linear_macs(&self.fc2.fc)
    }

    /// The binary layers, by name.
    pub fn binary_layers(&self) -> Vec<(String, BinaryLayer<'_, B>)> {
        vec![("fc2".into(), BinaryLayer::Linear(&self.fc2))]
    }

    pub(crate) fn set_tau(&mut self, tau: f64) {
        self.fc2.set_tau(tau);
    }

    /// The first layer's weight (tests).
    #[cfg(test)]
    pub(crate) fn first_weight(&self) -> &burn::module::Param<Tensor<B, 2>> {
        &self.fc1.weight
    }
}
