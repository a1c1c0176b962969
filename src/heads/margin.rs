//! Shared machinery of the cosine and margin heads (field notes §3): the
//! row normalisation, the logit scale (fixed or learned),
//! learnable class weights, `cos t_j = x^ . w^_j` `[B, C]`, and the
//! replacement of the target logit. A margin head only says how the target
//! cosine changes and what scale multiplies the logits.

use super::params::HeadError;
use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;

/// Clamp bound for cosines before `acos`/`sqrt` (field notes §3: ±(1-1e-7)).
pub const COS_CLAMP: f64 = 1.0 - 1e-7;

/// Learnable class weights `[C, D]`, initialised like a linear layer
/// (uniform ±1/sqrt(D)); only their directions matter.
#[derive(Module, Debug)]
pub struct CosineWeights<B: Backend> {
    /// Rows are `w_c`.
    pub weight: Param<Tensor<B, 2>>,
}

impl<B: Backend> CosineWeights<B> {
    /// `C` classes of dimension `D`.
    pub fn new(d: usize, c: usize, device: &B::Device) -> Self {
        let init = Initializer::KaimingUniform {
            gain: 1.0 / 3f64.sqrt(),
            fan_out_only: false,
        };
        Self {
            weight: init.init_with([c, d], Some(d), Some(c), device),
        }
    }

    /// `cos t_j` for every sample and class, `[B, D]` -> `[B, C]`. A zero
    /// feature or weight vector has cosine 0 (never NaN).
    pub fn cosines(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        l2_normalize(features).matmul(l2_normalize(self.weight.val()).transpose())
    }

    /// The weights as rows `[C, D]`.
    pub fn rows(&self) -> Tensor<B, 2> {
        self.weight.val()
    }

    /// Replace the weights by `w` (of the same `[C, D]`); a cosine head
    /// has no bias.
    pub fn load(&mut self, w: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Result<(), HeadError> {
        if bias.is_some() {
            return Err(HeadError::Other(
                "a bias applies to the softmax head only".into(),
            ));
        }
        check_shape("class weights", w.dims(), self.weight.dims())?;
        self.weight = Param::from_tensor(w.detach());
        Ok(())
    }
}

/// Given weights of shape `got` where the head has `want`.
pub(crate) fn check_shape(what: &str, got: [usize; 2], want: [usize; 2]) -> Result<(), HeadError> {
    if got == want {
        Ok(())
    } else {
        Err(HeadError::Other(format!(
            "{what} of shape {got:?}, the head has {want:?}"
        )))
    }
}

/// One-hot mask of the labels, `[B]` -> `[B, C]` (float, 1 at the target).
pub fn target_mask<B: Backend>(labels: Tensor<B, 1, Int>, classes: usize) -> Tensor<B, 2> {
    labels.one_hot::<2>(classes).float()
}

/// Replace the target entry of `cos [B, C]` by `target [B, 1]`:
/// `cos + mask * (target - cos_y)`.
pub fn replace_target<B: Backend>(
    cos: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    target: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<B, 2> {
    let [b, c] = cos.dims();
    let cos_y = cos.clone().gather(1, labels.clone().reshape([b, 1])); // [B, 1]
    let new = target(cos_y.clone());
    cos + target_mask(labels, c) * (new - cos_y)
}

/// The `HeadOps` methods every scaled cosine head shares (a head with
/// fields `weights: CosineWeights<B>` and `scale: f64`): prediction logits
/// `s cos t_j`, the class weights and the scale.
macro_rules! scaled_cosine_head_ops {
    () => {
        fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
            self.weights.cosines(features) * self.scale
        }
        fn class_weights(&self) -> Tensor<B, 2> {
            self.weights.rows()
        }
        fn scale(&self) -> Option<f64> {
            Some(self.scale)
        }
        fn load_weights(
            &mut self,
            weights: Tensor<B, 2>,
            bias: Option<Tensor<B, 1>>,
        ) -> Result<(), super::HeadError> {
            self.weights.load(weights, bias)
        }
    };
}
pub(crate) use scaled_cosine_head_ops;

/// A logit scale, fixed or learnable (`learn_scale = 1`).
#[derive(Module, Debug)]
pub struct ScaleParam<B: Backend> {
    fixed: f64,
    learned: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> ScaleParam<B> {
    /// A scale starting at `s`, learned or not.
    pub fn new(s: f64, learn: bool, device: &B::Device) -> Self {
        let learned = learn.then(|| Param::from_tensor(Tensor::from_floats([s as f32], device)));
        Self { fixed: s, learned }
    }

    /// `logits * s`.
    pub fn apply(&self, logits: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.learned {
            Some(p) => logits * p.val().unsqueeze::<2>(),
            None => logits * self.fixed,
        }
    }

    /// The current value of s.
    pub fn value(&self) -> f64 {
        match &self.learned {
            Some(p) => {
                let v: f32 = p.val().into_scalar().elem();
                v as f64
            }
            None => self.fixed,
        }
    }
}

/// Row-normalise `x [N, D]` with the same guard as PyTorch's
/// `F.normalize(eps = 1e-12)`: `x / max(|x|, eps)`. A zero row stays zero
/// (its cosines are 0, never NaN).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12); // [N, 1]
    x / norm
}
