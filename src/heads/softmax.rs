//! Plain softmax head: a linear layer with bias, `logit_j = w_j . x + b_j`
//! (field notes §3). PyTorch-default initialisation.

use super::HeadOps;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

/// Builds a [`SoftmaxHead`].
#[derive(Config, Debug)]
pub struct SoftmaxHeadConfig {
    /// Feature dimension D.
    pub features: usize,
    /// Classes C.
    pub classes: usize,
}

/// Linear classifier with bias.
#[derive(Module, Debug)]
pub struct SoftmaxHead<B: Backend> {
    linear: Linear<B>,
}

impl SoftmaxHeadConfig {
    /// Build on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SoftmaxHead<B> {
        SoftmaxHead {
            linear: LinearConfig::new(self.features, self.classes).init(device),
        }
    }
}

impl<B: Backend> SoftmaxHead<B> {
    /// Replace the weights `[C, D]` and bias `[C]`.
    pub fn set(&mut self, weights: Tensor<B, 2>, bias: Tensor<B, 1>) {
        self.linear.weight = burn::module::Param::from_tensor(weights.transpose());
        self.linear.bias = Some(burn::module::Param::from_tensor(bias));
    }
}

impl<B: Backend> HeadOps<B> for SoftmaxHead<B> {
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.linear.forward(features)
    }
    fn class_weights(&self) -> Tensor<B, 2> {
        // burn stores the weight as [D, C]; rows of the result are w_c.
        self.linear.weight.val().transpose()
    }
    fn bias(&self) -> Option<Tensor<B, 1>> {
        self.linear.bias.as_ref().map(|b| b.val())
    }
}
