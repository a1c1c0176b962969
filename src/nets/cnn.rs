//! The reference CNN of symfeat's benchmarks (and of the PyTorch peer in
//! `bench/common.py`): conv5x5 32 pad 2 - ReLU - maxpool 2 - conv5x5 64 pad 2
//! then ReLU, maxpool 2, fc 128, ReLU (the last ReLU only with
//! `feature_act = relu`, see [`super::FeatureAct`]). PyTorch-default initialisation
//! (uniform +-1/sqrt(fan_in) for weights and biases), which is burn's default.

use super::layers::{ChannelGroup, LayerRef, WeightTransform, conv, linear};
use crate::kernels::pool;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Builds a [`Cnn`].
#[derive(Config, Debug)]
pub struct CnnConfig {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Feature dimension D.
    #[config(default = 128)]
    pub features: usize,
    /// Apply the final ReLU after fc (`feature_act = relu`).
    #[config(default = true)]
    pub final_act: bool,
    /// conv1's output channels (fewer once pruned).
    #[config(default = 32)]
    pub conv1: usize,
    /// conv2's output channels (fewer once pruned).
    #[config(default = 64)]
    pub conv2: usize,
}

/// The reference CNN backbone.
#[derive(Module, Debug)]
pub struct Cnn<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    pool: MaxPool2d,
    fc: Linear<B>,
    final_act: bool,
}

impl CnnConfig {
    /// Build on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Cnn<B> {
        let pad = PaddingConfig2d::Explicit(2, 2, 2, 2);
        let flat = self.conv2 * (self.height / 4) * (self.width / 4);
        Cnn {
            conv1: Conv2dConfig::new([self.channels, self.conv1], [5, 5])
                .with_padding(pad.clone())
                .init(device),
            conv2: Conv2dConfig::new([self.conv1, self.conv2], [5, 5])
                .with_padding(pad)
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc: LinearConfig::new(flat, self.features).init(device),
            final_act: self.final_act,
        }
    }
}

impl<B: Backend> Cnn<B> {
    /// # Shapes
    /// `[B, Ch, H, W]` -> `[B, 128]`.
    pub fn forward_with(&self, images: Tensor<B, 4>, t: &dyn WeightTransform<B>) -> Tensor<B, 2> {
        // relu(max_pool(y)) = max_pool(relu(y)), values and gradients (ReLU is
        // monotone; a window whose maximum is <= 0 gets no gradient either
        // way), on a quarter of the values.
        let x = relu(pool::forward_module(
            &self.pool,
            conv(
                &self.conv1,
                images,
                t,
                LayerRef {
                    name: "conv1",
                    first: true,
                },
            ),
        )); // [B, 32, H/2, W/2]
        let x = t.gate("conv1", x);
        let x = relu(pool::forward_module(
            &self.pool,
            conv(
                &self.conv2,
                x,
                t,
                LayerRef {
                    name: "conv2",
                    first: false,
                },
            ),
        )); // [B, 64, H/4, W/4]
        let x = t.gate("conv2", x);
        let x: Tensor<B, 2> = x.flatten(1, 3);
        let x = linear(
            &self.fc,
            x,
            t,
            LayerRef {
                name: "fc",
                first: false,
            },
        );
        if self.final_act { relu(x) } else { x }
    }

    /// conv1's 32 channels (read by conv2) and conv2's 64 (read by fc, one
    /// input per pixel of the pooled H/4 x W/4 map); fc's output is the
    /// feature.
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        let c1 = self.conv1.weight.dims()[0];
        let c2 = self.conv2.weight.dims()[0];
        let [flat, _] = self.fc.weight.dims();
        vec![
            ChannelGroup::plain("conv1", c1, &[], &[("conv2", 1)]),
            ChannelGroup::plain("conv2", c2, &[], &[("fc", flat / c2.max(1))]),
        ]
    }

    /// Multiply-accumulates of one image of `h x w` (see
    /// [`super::Backbone::macs`]).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        use super::layers::{conv_macs, linear_macs};
        conv_macs(&self.conv1, h, w) + conv_macs(&self.conv2, h / 2, w / 2) + linear_macs(&self.fc)
    }
}

#[cfg(test)]
impl<B: burn::tensor::backend::AutodiffBackend> Cnn<B> {
    /// Sum of |gradient| of the first layer's weight (tests).
    pub(super) fn first_weight_grad(&self, grads: &B::Gradients) -> f64 {
        crate::kernels::test_util::grad_abs_sum(&self.conv1.weight, grads)
    }
}
