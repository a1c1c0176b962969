//! Center loss (Wen et al., ECCV 2016), an auxiliary term added to the
//! softmax loss (field notes §3): `center_weight / 2 * mean_i |x_i - c_{y_i}|^2`.
//!
//! The centers are not trained by SGD: after each step they move with their
//! own learning rate alpha = `center_lr` by the paper's rule (eq. 4)
//! `c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)`.
//! They start at zero, as in the paper.

use super::Head;
use super::params::{Check, HeadDesc, HeadError, ParamDef, Params, no_check};
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

/// `center`: a softmax head plus the center loss (an auxiliary term, see
/// `crate::train::aux_loss`).
pub(super) const DESC: HeadDesc = HeadDesc {
    name: "center",
    aliases: &[],
    formula: "softmax + center_weight/2 mean |x_i - c_y|^2, centers updated with center_lr",
    params: &[
        ParamDef {
            name: "center_weight",
            default: 0.01,
            doc: "weight lambda of the center term",
            check: Check::closed_open(0.0, f64::INFINITY, "a weight >= 0"),
        },
        ParamDef {
            name: "center_lr",
            default: 0.5,
            doc: "learning rate alpha of the centers",
            check: Check::closed_open(0.0, f64::INFINITY, "a learning rate >= 0"),
        },
    ],
    cosine: false,
    learned: true,
    check: no_check,
};

/// The head of `center` is a softmax head; the centers live in the model.
pub(super) fn init<B: Backend>(
    p: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    super::softmax::init(p, d, c, device)
}
