//! 2-D batch normalisation with PyTorch's semantics, written so that the
//! CPU backend takes its fast paths.
//!
//! burn 0.21's `BatchNorm` computes the statistics through
//! `swap_dims(0, 1).reshape(..)` (a strided copy of the whole activation)
//! and normalises with `[1, C, 1, 1]` operands, a broadcast that burn-flex
//! runs element by element through a strided iterator: on ResNet-20 that was
//! about half of the CPU time (`perf`, 2026-11-29). Here the statistics are
//! reductions over the last axis of `[N, C, H*W]` and then over N, and the
//! per-channel operands are repeated to `[N, C, 1, 1]`, the per-row-scalar
//! layout that burn-flex vectorises. Same parameters and record fields as
//! burn's module (`gamma`, `beta`, `running_mean`, `running_var`).
//!
//! As PyTorch (and unlike burn 0.21): the running variance is updated with
//! the unbiased batch variance (`n / (n - 1)`); normalisation uses the
//! biased one.

use burn::module::{Param, RunningState};
use burn::prelude::*;

/// Batch normalisation over `[N, C, H, W]` (PyTorch's `BatchNorm2d`).
#[derive(Module, Debug)]
pub struct BatchNorm2d<B: Backend> {
    /// Per-channel scale, initialised to 1.
    pub gamma: Param<Tensor<B, 1>>,
    /// Per-channel shift, initialised to 0.
    pub beta: Param<Tensor<B, 1>>,
    /// Running mean (for evaluation).
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (unbiased) variance (for evaluation).
    pub running_var: RunningState<Tensor<B, 1>>,
    /// Weight of the new batch in the running statistics (PyTorch: 0.1).
    pub momentum: f64,
    /// Added to the variance (PyTorch: 1e-5).
    pub epsilon: f64,
}

impl<B: Backend> BatchNorm2d<B> {
    /// `channels` channels, PyTorch's defaults.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }

    /// Normalise with the batch statistics when autodiff is on (training),
    /// with the running ones otherwise.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        // `[C]` -> `[N, C, 1, 1]`, contiguous: burn-flex's per-row-scalar path.
        let per_row = |v: Tensor<B, 1>| v.reshape([1, c, 1, 1]).repeat_dim(0, n);
        let (centered, var) = if B::ad_enabled(&x.device()) {
            let mean = x
                .clone()
                .reshape([n, c, h * w])
                .mean_dim(2)
                .mean_dim(0)
                .reshape([c]);
            let centered = x - per_row(mean.clone());
            let var = centered
                .clone()
                .square()
                .reshape([n, c, h * w])
                .mean_dim(2)
                .mean_dim(0)
                .reshape([c]);
            self.update_running(mean, var.clone(), n * h * w);
            (centered, var)
        } else {
            let mean = self.running_mean.value();
            (x - per_row(mean), self.running_var.value())
        };
        let scale = self.gamma.val() / var.add_scalar(self.epsilon).sqrt();
        centered * per_row(scale) + per_row(self.beta.val())
    }

    fn update_running(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>, count: usize) {
        let m = self.momentum;
        let unbiased = count as f64 / (count.max(2) - 1) as f64;
        let running_mean = self
            .running_mean
            .value_sync()
            .mul_scalar(1.0 - m)
            .add(mean.detach().mul_scalar(m));
        let running_var = self
            .running_var
            .value_sync()
            .mul_scalar(1.0 - m)
            .add(var.detach().mul_scalar(m * unbiased));
        self.running_mean.update(running_mean);
        self.running_var.update(running_var);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuTrain};
    use burn::tensor::{Distribution, Tolerance};

    type I = Cpu;
    type A = CpuTrain;

    fn input<BB: Backend>(dev: &BB::Device) -> Tensor<BB, 4> {
        Tensor::<BB, 4>::random([4, 3, 5, 6], Distribution::Normal(2.0, 3.0), dev)
    }

    /// Independent reference: the textbook formula on host values.
    fn reference(x: &[f32], [n, c, hw]: [usize; 3], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; x.len()];
        for ch in 0..c {
            let idx = |i: usize, k: usize| (i * c + ch) * hw + k;
            let m = n * hw;
            let vals: Vec<f64> = (0..n)
                .flat_map(|i| (0..hw).map(move |k| (i, k)))
                .map(|(i, k)| x[idx(i, k)] as f64)
                .collect();
            let mean = vals.iter().sum::<f64>() / m as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m as f64;
            for i in 0..n {
                for k in 0..hw {
                    let z = (x[idx(i, k)] as f64 - mean) / (var + 1e-5).sqrt();
                    out[idx(i, k)] = (z * gamma[ch] as f64 + beta[ch] as f64) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn training_forward_matches_the_formula_and_updates_running_stats_like_pytorch() {
        let dev = Default::default();
        let mut bn = BatchNorm2d::<A>::new(3, &dev);
        bn.gamma = Param::from_tensor(Tensor::from_floats([0.5, 1.0, 2.0], &dev));
        bn.beta = Param::from_tensor(Tensor::from_floats([0.0, -1.0, 3.0], &dev));
        let x = input::<A>(&dev);
        let xs: Vec<f32> = x.to_data().to_vec().unwrap();
        let y = bn.forward(x);
        let want = reference(&xs, [4, 3, 30], &[0.5, 1.0, 2.0], &[0.0, -1.0, 3.0]);
        y.into_data().assert_approx_eq::<f32>(
            &TensorData::new(want, [4, 3, 5, 6]),
            Tolerance::absolute(1e-4),
        );
        // running = 0.9 * init + 0.1 * batch (variance unbiased: n / (n - 1)).
        let xs = &xs;
        for ch in 0..3 {
            let v: Vec<f64> = (0..4)
                .flat_map(|i| (0..30).map(move |k| xs[(i * 3 + ch) * 30 + k] as f64))
                .collect();
            let mean = v.iter().sum::<f64>() / 120.0;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 119.0;
            let rm: Vec<f32> = bn.running_mean.value_sync().to_data().to_vec().unwrap();
            let rv: Vec<f32> = bn.running_var.value_sync().to_data().to_vec().unwrap();
            assert!((rm[ch] as f64 - 0.1 * mean).abs() < 1e-4, "{}", rm[ch]);
            assert!(
                (rv[ch] as f64 - (0.9 + 0.1 * var)).abs() < 1e-3,
                "{}",
                rv[ch]
            );
        }
    }

    #[test]
    fn gradients_match_burns_batch_norm() {
        // burn's module differs only in the running variance, not in the
        // training output or its gradients.
        let dev = Default::default();
        let x = input::<A>(&dev);
        let ours = BatchNorm2d::<A>::new(3, &dev);
        let theirs = burn::nn::BatchNormConfig::new(3).init::<A>(&dev);
        let weight = Tensor::<A, 4>::random([4, 3, 5, 6], Distribution::Normal(0.0, 1.0), &dev);
        let grads = |y: Tensor<A, 4>, x: &Tensor<A, 4>| {
            let g = (y * weight.clone()).sum().backward();
            x.grad(&g).unwrap().into_data()
        };
        let (xa, xb) = (x.clone().require_grad(), x.require_grad());
        let ga = grads(ours.forward(xa.clone()), &xa);
        let gb = grads(theirs.forward(xb.clone()), &xb);
        ga.assert_approx_eq::<f32>(&gb, Tolerance::absolute(1e-4));
    }

    #[test]
    fn evaluation_uses_the_running_statistics() {
        let dev = Default::default();
        let mut bn = BatchNorm2d::<I>::new(3, &dev);
        bn.running_mean = RunningState::new(Tensor::from_floats([1.0, 2.0, 3.0], &dev));
        bn.running_var = RunningState::new(Tensor::from_floats([4.0, 1.0, 0.25], &dev));
        let x = Tensor::<I, 4>::ones([2, 3, 1, 2], &dev);
        let y: Vec<f32> = bn.forward(x).into_data().to_vec().unwrap();
        let eps = 1e-5f32;
        for (i, v) in y.iter().enumerate() {
            let ch = (i / 2) % 3;
            let (m, s) = ([1.0, 2.0, 3.0][ch], [4.0f32, 1.0, 0.25][ch]);
            assert!((v - (1.0 - m) / (s + eps).sqrt()).abs() < 1e-5, "{i}: {v}");
        }
    }
}
