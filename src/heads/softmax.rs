//! Plain softmax head: a linear layer with bias, `logit_j = w_j . x + b_j`
//! (field notes §3). PyTorch-default initialisation.

use super::Head;
use super::HeadOps;
use super::params::{HeadDesc, HeadError, Params, no_check};
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
        self.linear.weight = burn::module::Param::from_tensor(weights.transpose().detach());
        self.linear.bias = Some(burn::module::Param::from_tensor(bias.detach()));
    }
}

impl<B: Backend> HeadOps<B> for SoftmaxHead<B> {
    fn load_weights(
        &mut self,
        weights: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Result<(), HeadError> {
        let Some(bias) = bias else {
            return Err(HeadError::Other(
                "the softmax head needs its bias [C] with the weights".into(),
            ));
        };
        let [d, c] = self.linear.weight.dims();
        super::margin::check_shape("class weights", weights.dims(), [c, d])?;
        if bias.dims() != [c] {
            return Err(HeadError::Other(format!(
                "a bias of {} values, the head has C = {c}",
                bias.dims()[0]
            )));
        }
        self.set(weights, bias);
        Ok(())
    }
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

/// `softmax` (field notes §3).
pub(super) const DESC: HeadDesc = HeadDesc {
    name: "softmax",
    aliases: &[],
    formula: "w_j . x + b_j (linear layer with bias)",
    params: &[],
    cosine: false,
    learned: true,
    check: no_check,
};

/// Build a softmax head for `d` features and `c` classes.
pub(super) fn init<B: Backend>(
    _: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    Ok(Head::Softmax(SoftmaxHeadConfig::new(d, c).init(device)))
}
