//! A two-hidden-layer perceptron: flatten - fc 256 - ReLU - fc 128 - ReLU
//! (the last ReLU only with `feature_act = relu`, see [`super::FeatureAct`]).

use super::layers::{ChannelGroup, LayerRef, WeightTransform, linear};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Builds an [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Flattened input size (Ch * H * W).
    pub input: usize,
    /// First hidden width.
    #[config(default = 256)]
    pub hidden: usize,
    /// Feature dimension D.
    #[config(default = 128)]
    pub features: usize,
    /// Apply the final ReLU (`feature_act = relu`); off: the head sees the
    /// signed output of fc2.
    #[config(default = true)]
    pub final_act: bool,
}

/// Multilayer perceptron backbone; PyTorch-default initialisation.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    fc1: Linear<B>,
    fc2: Linear<B>,
    final_act: bool,
}

impl MlpConfig {
    /// Build on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        Mlp {
            fc1: LinearConfig::new(self.input, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, self.features).init(device),
            final_act: self.final_act,
        }
    }
}

impl<B: Backend> Mlp<B> {
    /// # Shapes
    /// `[B, Ch, H, W]` -> `[B, 128]`.
    pub fn forward_with(&self, images: Tensor<B, 4>, t: &dyn WeightTransform<B>) -> Tensor<B, 2> {
        let x: Tensor<B, 2> = images.flatten(1, 3); // [B, Ch*H*W]
        let x = relu(linear(
            &self.fc1,
            x,
            t,
            LayerRef {
                name: "fc1",
                first: true,
            },
        ));
        let x = t.gate2("fc1", x);
        let x = linear(
            &self.fc2,
            x,
            t,
            LayerRef {
                name: "fc2",
                first: false,
            },
        );
        if self.final_act { relu(x) } else { x }
    }

    /// The hidden layer fc1 (its output is read by fc2; fc2's output is the
    /// feature the head reads, not prunable here).
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        let [_, hidden] = self.fc1.weight.dims();
        vec![ChannelGroup::plain("fc1", hidden, &[], &[("fc2", 1)])]
    }

    /// Multiply-accumulates of one image (see [`super::Backbone::macs`]).
    pub fn macs(&self) -> u64 {
        use super::layers::linear_macs;
        linear_macs(&self.fc1) + linear_macs(&self.fc2)
    }
}

#[cfg(test)]
impl<B: burn::tensor::backend::AutodiffBackend> Mlp<B> {
    /// Sum of |gradient| of the first layer's weight (tests).
    pub(super) fn first_weight_grad(&self, grads: &B::Gradients) -> f64 {
        crate::kernels::test_util::grad_abs_sum(&self.fc1.weight, grads)
    }
}
