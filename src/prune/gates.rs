//! Channel gates (Molchanov et al. 2019, field notes §8.4): a factor `z_k`
//! per channel of every prunable group, 1 for a kept channel and 0 for a
//! removed one, multiplied into the group's activations where the backbone
//! calls [`WeightTransform::gate`].
//!
//! The backbones gate after the activation (ReLU, PReLU, after pooling
//! where there is one; after BatchNorm + ReLU in a ResNet block; after the
//! residual sum and its ReLU for a ResNet stage). The paper's gate sits
//! between BatchNorm and ReLU; both give the same values and the same
//! `dL/dz` at `z = 1`, since ReLU, PReLU and max-pooling are positively
//! homogeneous: `relu(z y) = z relu(y)` for `z >= 0`.

use crate::nets::WeightTransform;
use burn::prelude::*;

/// One gate vector per group, by the group's name.
pub struct Gates<B: Backend> {
    gates: Vec<(String, Tensor<B, 1>)>,
}

impl<B: Backend> Gates<B> {
    /// Gates of value 1 where `alive`, 0 elsewhere, per group.
    pub fn new(names: &[String], alive: &[Vec<bool>], device: &B::Device) -> Self {
        let values: Vec<Vec<f32>> = alive
            .iter()
            .map(|a| a.iter().map(|&on| if on { 1.0 } else { 0.0 }).collect())
            .collect();
        Self::from_values(names, &values, device)
    }

    /// Gates of the given values, per group.
    pub fn from_values(names: &[String], values: &[Vec<f32>], device: &B::Device) -> Self {
        let gates = names
            .iter()
            .zip(values)
            .map(|(n, z)| (n.clone(), Tensor::from_floats(z.as_slice(), device)))
            .collect();
        Self { gates }
    }

    /// Only the groups with a removed unit (an all-ones gate is the
    /// identity: skipping its multiplication saves a broadcast pass per
    /// group where no gradient on the gates is needed).
    pub fn removed_only(names: &[String], alive: &[Vec<bool>], device: &B::Device) -> Self {
        let (n, a): (Vec<String>, Vec<Vec<bool>>) = names
            .iter()
            .zip(alive)
            .filter(|(_, a)| a.iter().any(|on| !on))
            .map(|(n, a)| (n.clone(), a.clone()))
            .unzip();
        Self::new(&n, &a, device)
    }

    /// The gate tensors, in the groups' order (to mark them for gradients,
    /// or read their gradients).
    pub fn tensors(&self) -> impl Iterator<Item = &Tensor<B, 1>> {
        self.gates.iter().map(|g| &g.1)
    }

    /// Every gate through `f` (e.g. `require_grad`).
    pub fn map(self, f: impl Fn(Tensor<B, 1>) -> Tensor<B, 1>) -> Self {
        Self {
            gates: self.gates.into_iter().map(|(n, z)| (n, f(z))).collect(),
        }
    }

    fn find(&self, group: &str) -> Option<&Tensor<B, 1>> {
        self.gates.iter().find(|g| g.0 == group).map(|g| &g.1)
    }
}

impl<B: Backend> WeightTransform<B> for Gates<B> {
    fn is_identity(&self) -> bool {
        true // the weights as stored; only activations are gated
    }
    fn gate(&self, group: &str, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.find(group) {
            Some(z) => {
                let c = z.dims()[0];
                x * z.clone().reshape([1, c, 1, 1])
            }
            None => x,
        }
    }
    fn gate2(&self, group: &str, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self.find(group) {
            Some(z) => {
                let c = z.dims()[0];
                x * z.clone().reshape([1, c])
            }
            None => x,
        }
    }
}
