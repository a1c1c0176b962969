//! CIFAR ResNets, binary, with the ReCU authors' block (Bi-Real style,
//! field notes §8.2): a shortcut around each binary conv and hardtanh
//! instead of ReLU,
//!
//! ```text
//! y   = hardtanh(bn1(bconv1(x)) + shortcut(x))
//! out = hardtanh(bn2(bconv2(y)) + y)
//! ```
//!
//! with the option-A shortcut of the float ResNets when a block changes
//! shape. The stem (3x3 conv 16, BN, hardtanh) and the head stay float; the
//! last block's final hardtanh is the backbone's final activation
//! (`feature_act = relu` keeps it, `linear`/`bn` drop it).

use super::super::BatchNorm2d;
use super::super::layers::{LayerRef, WeightTransform, conv, conv_macs, conv_out};
use super::super::resnet::shortcut_route;
use super::{Binarize, BinaryConv, BinaryLayer, SetTau, hardtanh};
use crate::kernels::{pool, shortcut};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::prelude::*;

const STAGES: [usize; 3] = [16, 32, 64];

/// The Bi-Real-style binary basic block.
#[derive(Module, Debug)]
struct BinaryBlock<B: Backend> {
    conv1: BinaryConv<B>,
    bn1: BatchNorm2d<B>,
    conv2: BinaryConv<B>,
    bn2: BatchNorm2d<B>,
    stride: usize,
    /// The option-A shortcut's channel route (empty: the identity).
    route: Vec<usize>,
    /// The final hardtanh.
    act: bool,
}

impl<B: Backend> BinaryBlock<B> {
    fn forward(&self, x: Tensor<B, 4>, t: &dyn WeightTransform<B>, k: usize) -> Tensor<B, 4> {
        let s = shortcut::option_a(x.clone(), self.stride, &self.route);
        let y = self.conv1.forward(x, t, &format!("blocks.{k}.conv1"));
        let y = hardtanh(self.bn1.forward_add(y, Some(s), false));
        let out = self
            .conv2
            .forward(y.clone(), t, &format!("blocks.{k}.conv2"));
        let out = self.bn2.forward_add(out, Some(y), false);
        if self.act { hardtanh(out) } else { out }
    }
}

/// A binary CIFAR ResNet (6n + 2 layers).
#[derive(Module, Debug)]
pub struct BinaryResNet<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm2d<B>,
    blocks: Vec<BinaryBlock<B>>,
}

impl<B: Backend> BinaryResNet<B> {
    /// `channels` input channels, `n` blocks per stage; `mode`: sign, recu or the float control.
    pub fn new(
        channels: usize,
        n: usize,
        final_act: bool,
        mode: Binarize,
        device: &B::Device,
    ) -> Self {
        let all = |c: usize| (0..c).collect::<Vec<usize>>();
        let mut blocks = Vec::with_capacity(3 * n);
        for stage in 0..3 {
            for i in 0..n {
                let cout = STAGES[stage];
                let (stride, cin, route) = if stage > 0 && i == 0 {
                    let from = STAGES[stage - 1];
                    let pad = (cout - from) / 2;
                    (2, from, shortcut_route(&all(from), &all(cout), pad))
                } else {
                    (1, cout, vec![])
                };
                let last = stage == 2 && i + 1 == n;
                blocks.push(BinaryBlock {
                    conv1: BinaryConv::new([cin, cout], 3, stride, 1, mode, device),
                    bn1: BatchNorm2d::new(cout, device),
                    conv2: BinaryConv::new([cout, cout], 3, 1, 1, mode, device),
                    bn2: BatchNorm2d::new(cout, device),
                    stride,
                    route,
                    act: !last || final_act,
                });
            }
        }
        Self {
            conv: Conv2dConfig::new([channels, 16], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .with_initializer(Initializer::KaimingNormal {
                    gain: std::f64::consts::SQRT_2,
                    fan_out_only: false,
                })
                .init(device),
            bn: BatchNorm2d::new(16, device),
            blocks,
        }
    }

    /// # Shapes
    /// `[B, Ch, H, W]` -> `[B, 64]`.
    pub fn forward_with(&self, images: Tensor<B, 4>, t: &dyn WeightTransform<B>) -> Tensor<B, 2> {
        let at = LayerRef {
            name: "conv",
            first: true,
        };
        let mut x = hardtanh(self.bn.forward(conv(&self.conv, images, t, at)));
        for (k, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, t, k);
        }
        pool::global_avg_pool(x)
    }

    /// Multiply-accumulates of one image (binary ones counted as MACs).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        let mut total = conv_macs(&self.conv, h, w);
        let (mut h, mut w) = conv_out(&self.conv, h, w);
        for b in &self.blocks {
            total += conv_macs(&b.conv1.conv, h, w);
            (h, w) = conv_out(&b.conv1.conv, h, w);
            total += conv_macs(&b.conv2.conv, h, w);
        }
        total
    }

    /// The binary layers, by name.
    pub fn binary_layers(&self) -> Vec<(String, BinaryLayer<'_, B>)> {
        self.blocks
            .iter()
            .enumerate()
            .flat_map(|(k, b)| {
                [
                    (format!("blocks.{k}.conv1"), BinaryLayer::Conv(&b.conv1)),
                    (format!("blocks.{k}.conv2"), BinaryLayer::Conv(&b.conv2)),
                ]
            })
            .collect()
    }

    pub(crate) fn set_tau(&mut self, tau: f64) {
        for b in &mut self.blocks {
            b.conv1.set_tau(tau);
            b.conv2.set_tau(tau);
        }
    }

    /// The first layer's weight (tests).
    #[cfg(test)]
    pub(crate) fn first_weight(&self) -> &burn::module::Param<Tensor<B, 4>> {
        &self.conv.weight
    }
}
