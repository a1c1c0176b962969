//! Center loss (Wen et al., ECCV 2016), an auxiliary term added to the
//! softmax loss (field notes §3): `center_weight / 2 * mean_i |x_i - c_{y_i}|^2`.
//!
//! The centers are not trained by SGD: after each step they move with their
//! own learning rate alpha = `center_lr` by the paper's rule (eq. 4)
//! `c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)`.
//! They start at zero, as in the paper.

use burn::module::Param;
use burn::prelude::*;

/// Class centers and the weights of the center term.
#[derive(Module, Debug)]
pub struct CenterLoss<B: Backend> {
    centers: Param<Tensor<B, 2>>,
    weight: f64,
    lr: f64,
}

impl<B: Backend> CenterLoss<B> {
    /// `c` centers in `d` dimensions.
    pub fn new(d: usize, c: usize, weight: f64, lr: f64, device: &B::Device) -> Self {
        Self {
            centers: Param::from_tensor(Tensor::zeros([c, d], device)),
            weight,
            lr,
        }
    }

    /// The centers `[C, D]`.
    pub fn centers(&self) -> Tensor<B, 2> {
        self.centers.val().detach()
    }

    /// The center term for `features [B, D]` (gradient flows to the features only).
    pub fn loss(&self, features: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let c_y = self.centers().select(0, labels); // [B, D]
        (features - c_y).powf_scalar(2.0).sum_dim(1).mean() * (self.weight / 2.0)
    }

    /// Move the centers towards the batch's features (paper eq. 4).
    pub fn update(mut self, features: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Self {
        let [c, _] = self.centers.dims();
        let x = features.detach();
        let onehot = labels.one_hot::<2>(c).float(); // [B, C]
        let n = onehot.clone().sum_dim(0).transpose(); // [C, 1]
        let sum_x = onehot.transpose().matmul(x); // [C, D]
        let old = self.centers();
        let delta = (old.clone() * n.clone() - sum_x) / (n + 1.0);
        let new = old - delta * self.lr;
        self.centers = self.centers.map(|_| new);
        self
    }
}
