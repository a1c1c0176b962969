//! The reference CNN, binary: conv5x5 32 pad 2 (float) - BN - hardtanh -
//! maxpool 2 - **binary** conv5x5 64 pad 2 - BN - hardtanh - maxpool 2 -
//! **binary** fc 128 - BN1d - hardtanh (the last hardtanh only with
//! `feature_act = relu`: the backbone's own final activation). The shape
//! of the float CNN, as in field notes §8.2's PyTorch measurement.

use super::super::BatchNorm2d;
use super::super::layers::{LayerRef, WeightTransform, conv, conv_macs, linear_macs};
use super::{Binarize, BinaryConv, BinaryLayer, BinaryLinear, SetTau, hardtanh};
use crate::kernels::pool;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;

/// The binary reference CNN.
#[derive(Module, Debug)]
pub struct BinaryCnn<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm2d<B>,
    conv2: BinaryConv<B>,
    bn2: BatchNorm2d<B>,
    pool: MaxPool2d,
    fc: BinaryLinear<B>,
    bn3: BatchNorm2d<B>,
    final_act: bool,
}

impl<B: Backend> BinaryCnn<B> {
    /// `channels x height x width` images, `features` = D; `mode`: sign, recu or the float control.
    pub fn new(
        [channels, height, width]: [usize; 3],
        features: usize,
        final_act: bool,
        mode: Binarize,
        device: &B::Device,
    ) -> Self {
        let flat = 64 * (height / 4) * (width / 4);
        Self {
            conv1: Conv2dConfig::new([channels, 32], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device),
            bn1: BatchNorm2d::new(32, device),
            conv2: BinaryConv::new([32, 64], 5, 1, 2, mode, device),
            bn2: BatchNorm2d::new(64, device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc: BinaryLinear::new(flat, features, mode, device),
            bn3: BatchNorm2d::new(features, device),
            final_act,
        }
    }

    /// # Shapes
    /// `[B, Ch, H, W]` -> `[B, D]`.
    pub fn forward_with(&self, images: Tensor<B, 4>, t: &dyn WeightTransform<B>) -> Tensor<B, 2> {
        let at = LayerRef {
            name: "conv1",
            first: true,
        };
        let x = self.bn1.forward(conv(&self.conv1, images, t, at));
        let x = pool::forward_module(&self.pool, hardtanh(x)); // [B, 32, H/2, W/2]
        let x = self.bn2.forward(self.conv2.forward(x, t, "conv2"));
        let x = pool::forward_module(&self.pool, hardtanh(x)); // [B, 64, H/4, W/4]
        let x = self
            .bn3
            .forward_features(self.fc.forward(x.flatten(1, 3), t, "fc"));
        if self.final_act { hardtanh(x) } else { x }
    }

    /// Multiply-accumulates of one image (binary ones counted as MACs).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        conv_macs(&self.conv1, h, w)
            + conv_macs(&self.conv2.conv, h / 2, w / 2)
            + linear_macs(&self.fc.fc)
    }

    /// The binary layers, by name.
    pub fn binary_layers(&self) -> Vec<(String, BinaryLayer<'_, B>)> {
        vec![
            ("conv2".into(), BinaryLayer::Conv(&self.conv2)),
            ("fc".into(), BinaryLayer::Linear(&self.fc)),
        ]
    }

    pub(crate) fn set_tau(&mut self, tau: f64) {
        self.conv2.set_tau(tau);
        self.fc.set_tau(tau);
    }

    /// The first layer's weight (tests).
    #[cfg(test)]
    pub(crate) fn first_weight(&self) -> &burn::module::Param<Tensor<B, 4>> {
        &self.conv1.weight
    }
}
