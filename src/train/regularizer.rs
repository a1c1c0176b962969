//! Weight regularisers that prepare a network for compression, as
//! auxiliary loss terms (`super::aux_loss`), on the backbone's convolution and
//! linear weights (rank 2 and 4; biases, normalisation and the head are
//! left alone: the head's geometry is what symfeat measures):
//!
//! - `l1`: `lambda sum_l |w_l|_1` (the usual L1 penalty, unnormalised);
//! - `compressibility` (Aytekin, Cricri, Aksu, arXiv 1905.01044; field notes
//!   §8.1): `lambda sum_l |w_l|_1 / |w_l|_2`, unnormalised per layer (each
//!   term in `[1, sqrt(n_l)]`), `|w|_2 = sqrt(sum w^2 + 1e-12)`. It is scale
//!   invariant (its gradient is orthogonal to `w`), so weight decay still
//!   sets the scale. At a critical point the non-zero weights of a layer
//!   have one magnitude: `{-c, 0, c}`, `L = sqrt(k)`.
//!
//! `sign(0) = 0` in both gradients (burn's `abs`). Per epoch the run logs
//! the mean term (`reg_loss`), the sparsity of the backbone weights
//! (`sparsity`: the share below 1 % of their layer's largest magnitude) and
//! the entropy of the others (`weight_entropy`: bits per weight, the mean
//! over layers, weighted by their kept weights, of each layer's histogram
//! entropy on 255 equal bins over `[-M, M]`).

use super::Model;
use super::aux_loss::AuxLoss;
use anyhow::Result;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// Which regulariser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regularizer {
    /// None.
    None,
    /// `lambda sum |w|_1`.
    L1,
    /// `lambda sum |w|_1 / |w|_2`.
    Compressibility,
}

impl Regularizer {
    /// Parse a CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "l1" => Some(Self::L1),
            "compressibility" => Some(Self::Compressibility),
            _ => None,
        }
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::L1 => "l1",
            Self::Compressibility => "compressibility",
        }
    }

    /// The default `reg_weight` (see the README: what it costs and buys on
    /// the reference CNN).
    pub fn default_weight(self) -> f64 {
        match self {
            Self::None => 0.0,
            Self::L1 => L1_DEFAULT,
            Self::Compressibility => COMPRESSIBILITY_DEFAULT,
        }
    }
}

/// Default weight of `l1`.
pub const L1_DEFAULT: f64 = 5e-5;
/// Default weight of `compressibility`.
pub const COMPRESSIBILITY_DEFAULT: f64 = 1e-3;

/// Added to `sum w^2` under the square root of `|w|_2`.
pub const L2_EPS: f64 = 1e-12;

/// The regulariser's term on one weight tensor (shape `[1]`).
pub fn term<B: Backend, const D: usize>(kind: Regularizer, w: Tensor<B, D>) -> Tensor<B, 1> {
    let l1 = w.clone().abs().sum();
    match kind {
        Regularizer::None => l1.mul_scalar(0.0),
        Regularizer::L1 => l1,
        Regularizer::Compressibility => {
            let l2 = w.powf_scalar(2.0).sum().add_scalar(L2_EPS).sqrt();
            l1 / l2
        }
    }
}

/// Sums the term over a module's rank-2 and rank-4 float parameters.
struct Sum<B: Backend> {
    kind: Regularizer,
    acc: Option<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Sum<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if D == 2 || D == 4 {
            let t = term(self.kind, param.val());
            self.acc = Some(match self.acc.take() {
                Some(a) => a + t,
                None => t,
            });
        }
    }
}

/// `sum_l term(w_l)` over the weights of `module` (0 without any).
pub fn total<B: Backend, M: Module<B>>(
    kind: Regularizer,
    module: &M,
    device: &B::Device,
) -> Tensor<B, 1> {
    let mut s = Sum { kind, acc: None };
    module.visit(&mut s);
    s.acc.unwrap_or_else(|| Tensor::zeros([1], device))
}

/// The regulariser as a training-loss term: `weight x total(backbone)`.
pub struct RegTerm {
    /// Which.
    pub kind: Regularizer,
    /// Its weight lambda.
    pub weight: f64,
}

impl<B: AutodiffBackend> AuxLoss<B> for RegTerm {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn loss(
        &self,
        model: &Model<B>,
        features: &Tensor<B, 2>,
        _labels: &Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        total(self.kind, &model.net, &features.device()).mul_scalar(self.weight)
    }

    fn log_key(&self) -> Option<&'static str> {
        Some("reg_loss")
    }
}

/// Sparsity and entropy of the backbone's weights (see the module docs).
pub fn weight_stats<B: Backend>(model: &Model<B>) -> Result<(f64, f64)> {
    let tensors = crate::tensors::collect(&model.net)?;
    let (mut small, mut n) = (0usize, 0usize);
    // Per layer: its entropy and its count of kept weights; the result is
    // the count-weighted mean of the layers' entropies.
    let (mut weighted, mut kept_all) = (0.0f64, 0u64);
    for t in tensors.iter().filter(|t| t.weight) {
        let m = t.values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        n += t.values.len();
        let mut counts = [0u64; 255];
        let mut kept = 0u64;
        for &v in &t.values {
            if m == 0.0 || v.abs() < 0.01 * m {
                small += 1;
            } else {
                // 255 bins over [-M, M]
                let bin = ((v / m) * 127.0).round() as i32 + 127;
                counts[bin.clamp(0, 254) as usize] += 1;
                kept += 1;
            }
        }
        if kept > 0 {
            let h: f64 = counts
                .iter()
                .filter(|&&k| k > 0)
                .map(|&k| {
                    let p = k as f64 / kept as f64;
                    -p * p.log2()
                })
                .sum();
            weighted += h * kept as f64;
            kept_all += kept;
        }
    }
    let entropy = if kept_all == 0 {
        0.0
    } else {
        weighted / kept_all as f64
    };
    Ok((small as f64 / n.max(1) as f64, entropy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuTrain;

    fn grad(kind: Regularizer, w: &[f32]) -> (f64, Vec<f64>) {
        let dev = Default::default();
        let t = Tensor::<CpuTrain, 1>::from_floats(w, &dev).require_grad();
        let l = term(kind, t.clone());
        let v: f32 = l.clone().into_scalar();
        let g = t.grad(&l.backward()).unwrap();
        let g: Vec<f32> = g.into_data().to_vec().unwrap();
        (v as f64, g.into_iter().map(|x| x as f64).collect())
    }

    /// `|w|_1 / |w|_2` and its gradient `sign(w)/|w|_2 - |w|_1 w/|w|_2^3`
    /// against an f64 computation and central finite differences.
    #[test]
    fn compressibility_and_its_gradient_match_f64_and_finite_differences() {
        let w = [0.3f32, -1.2, 0.05, 2.0, -0.7, 0.0];
        let (v, g) = grad(Regularizer::Compressibility, &w);
        let wd: Vec<f64> = w.iter().map(|&x| x as f64).collect();
        let l1: f64 = wd.iter().map(|x| x.abs()).sum();
        let l2: f64 = (wd.iter().map(|x| x * x).sum::<f64>() + L2_EPS).sqrt();
        assert!((v - l1 / l2).abs() < 1e-6, "{v} vs {}", l1 / l2);
        let f = |x: &[f64]| {
            let a: f64 = x.iter().map(|v| v.abs()).sum();
            a / (x.iter().map(|v| v * v).sum::<f64>() + L2_EPS).sqrt()
        };
        for i in 0..w.len() {
            let closed = if wd[i] == 0.0 {
                0.0
            } else {
                wd[i].signum() / l2
            } - l1 * wd[i] / l2.powi(3);
            assert!((g[i] - closed).abs() < 1e-5, "[{i}] {} vs {closed}", g[i]);
            if wd[i] != 0.0 {
                let h = 1e-5;
                let (mut a, mut b) = (wd.clone(), wd.clone());
                a[i] += h;
                b[i] -= h;
                let fd = (f(&a) - f(&b)) / (2.0 * h);
                assert!((g[i] - fd).abs() < 1e-4, "[{i}] {} vs fd {fd}", g[i]);
            }
        }
        // sign(0) = 0: the zero weight's gradient is only the second term, 0.
        assert_eq!(g[5], 0.0);
    }

    /// A ternary vector with k non-zeros: sqrt(k), zero gradient on its
    /// non-zeros; scale invariance.
    #[test]
    fn a_ternary_vector_is_a_critical_point_and_the_loss_is_scale_invariant() {
        let w = [0.5f32, 0.0, -0.5, 0.5, 0.0, 0.0, -0.5];
        let (v, g) = grad(Regularizer::Compressibility, &w);
        assert!((v - 2.0).abs() < 1e-6, "{v}");
        for (x, gi) in w.iter().zip(&g) {
            if *x != 0.0 {
                assert!(gi.abs() < 1e-6, "{gi}");
            }
        }
        let scaled: Vec<f32> = w.iter().map(|x| 7.0 * x).collect();
        let (v2, _) = grad(Regularizer::Compressibility, &scaled);
        assert!((v - v2).abs() < 1e-6);
        let (l1, gl1) = grad(Regularizer::L1, &w);
        assert!((l1 - 2.0).abs() < 1e-6);
        assert_eq!(gl1, vec![1.0, 0.0, -1.0, 1.0, 0.0, 0.0, -1.0]);
    }
}
