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
//! On the CPU backend it goes further: `kernels::batch_norm` computes the statistics,
//! the normalisation, an optional residual and ReLU (`forward_relu`), and
//! the backward pass as one autodiff operation on `Autodiff<Flex>`,
//! parallel over channels and rows (ResNet-20, batch 128, 2 threads: 296 ->
//! 401-435 train img/s for the normalisation alone, 0.86 -> 0.96 of
//! PyTorch's speed with the ReLU and residual), and evaluation on `Flex` in
//! one sweep. The burn-operation path serves every other backend.
//!
//! As PyTorch (and unlike burn 0.21): the running variance is updated with
//! the unbiased batch variance (`n / (n - 1)`); normalisation uses the
//! biased one.

use burn::module::{Param, RunningState};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::kernels;

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
        if let Some(y) = self.fused_forward(&x, None, false) {
            return y;
        }
        self.generic_forward(x)
    }

    /// `relu(forward(x) + residual)` (`relu(forward(x))` without a
    /// residual): in training on `Autodiff<Flex>`, one fused operation.
    pub fn forward_relu(&self, x: Tensor<B, 4>, residual: Option<Tensor<B, 4>>) -> Tensor<B, 4> {
        self.forward_add(x, residual, true)
    }

    /// `forward(x) + residual`, then a ReLU if `relu`: in training on
    /// `Autodiff<Flex>`, one fused operation.
    pub fn forward_add(
        &self,
        x: Tensor<B, 4>,
        residual: Option<Tensor<B, 4>>,
        relu: bool,
    ) -> Tensor<B, 4> {
        if let Some(y) = self.fused_forward(&x, residual.as_ref(), relu) {
            return y;
        }
        let y = self.generic_forward(x);
        let y = match residual {
            Some(r) => y + r,
            None => y,
        };
        if relu { self::relu(y) } else { y }
    }

    /// Batch normalisation of features `[N, D]` (PyTorch's `BatchNorm1d`
    /// on 2-D input): the same statistics as `[N, D, 1, 1]` here.
    pub fn forward_features(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        self.forward(x.reshape([n, d, 1, 1])).reshape([n, d])
    }

    /// [`Self::forward`] in burn tensor operations (any backend).
    fn generic_forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
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

    /// Through the CPU kernel ([`crate::kernels::batch_norm`]): training on
    /// `Autodiff<Flex>` (the running statistics updated here), evaluation on
    /// `Flex`; `None` on other backends or tensors it does not take.
    fn fused_forward(
        &self,
        x: &Tensor<B, 4>,
        residual: Option<&Tensor<B, 4>>,
        relu: bool,
    ) -> Option<Tensor<B, 4>> {
        let params = kernels::batch_norm::Params {
            gamma: self.gamma.val(),
            beta: self.beta.val(),
            running_mean: self.running_mean.value(),
            running_var: self.running_var.value(),
            epsilon: self.epsilon,
        };
        let (y, batch) = kernels::batch_norm::forward(x, residual, relu, params)?;
        if let Some(stats) = batch {
            let [n, c, h, w] = x.dims();
            let device = x.device();
            let column = |f: fn(&(f64, f64)) -> f64| {
                let v: Vec<f32> = stats.iter().map(|s| f(s) as f32).collect();
                Tensor::<B, 1>::from_data(TensorData::new(v, [c]), &device)
            };
            self.update_running(column(|s| s.0), column(|s| s.1), n * h * w);
        }
        Some(y)
    }

    fn update_running(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>, count: usize) {
        let m = self.momentum;
        let unbiased = count as f64 / (count.max(2) - 1) as f64;
        let running_mean = self
            .running_mean
            .value_sync()
            .detach()
            .mul_scalar(1.0 - m)
            .add(mean.detach().mul_scalar(m));
        let running_var = self
            .running_var
            .value_sync()
            .detach()
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

    /// A model loaded from a record (a checkpoint, or the CPU-drawn start of
    /// a run on any backend) holds its running statistics as tensors that
    /// require gradients; the update must not chain them into the autodiff
    /// graph, which then grew by a step each step (measured: epochs of the
    /// MLP with BatchNorm1d features on Fashion-MNIST took 3.1, 5.5, 9.6,
    /// 14.1 s; with the detach 1.6, 1.8, 1.6, 1.7 s).
    #[test]
    fn running_statistics_loaded_from_a_record_stay_out_of_the_graph() {
        use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
        let dev = Default::default();
        let rec = BinBytesRecorder::<FullPrecisionSettings>::default();
        let bytes = rec
            .record(BatchNorm2d::<A>::new(3, &dev).into_record(), ())
            .unwrap();
        for x in [
            input::<A>(&dev),
            // [N, C, 1, 1]: the generic path (features).
            Tensor::<A, 4>::random([8, 3, 1, 1], Distribution::Normal(0.0, 1.0), &dev),
        ] {
            let record: BatchNorm2dRecord<A> = rec.load(bytes.clone(), &dev).unwrap();
            // The loaded leaves: gradients reach them only through a chain.
            let (mean0, var0) = (record.running_mean.val(), record.running_var.val());
            assert!(
                mean0.is_require_grad(),
                "the record no longer loads tracked tensors"
            );
            let bn = BatchNorm2d::<A>::new(3, &dev).load_record(record);
            for _ in 0..3 {
                let _ = bn.forward(x.clone());
            }
            let g = bn.running_mean.value_sync().sum().backward();
            assert!(
                mean0.grad(&g).is_none(),
                "running_mean chained to its start"
            );
            let g = bn.running_var.value_sync().sum().backward();
            assert!(var0.grad(&g).is_none(), "running_var chained to its start");
        }
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

    /// How [`step`] runs the module.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Mode {
        Plain,
        Relu,
        ReluResidual,
        /// A residual without ReLU (the last block of a ResNet with
        /// `feature_act = linear`).
        Residual,
    }

    /// The output, the gradients of `sum(y * weight)` for x, gamma, beta
    /// and the residual (empty without one), and the running statistics
    /// after the step. (A fresh module per call: clones share their
    /// running state.)
    fn step(
        gamma: &[f32],
        beta: &[f32],
        x: &Tensor<A, 4>,
        mode: Mode,
        fused: bool,
    ) -> [Vec<f32>; 7] {
        let dev = Default::default();
        let n = x.dims().iter().product::<usize>();
        let pattern = |a: usize, b: usize| {
            let v: Vec<f32> = (0..n)
                .map(|i| ((i * a) % b) as f32 - (b / 2) as f32)
                .collect();
            Tensor::<A, 4>::from_floats(TensorData::new(v, x.dims()), &dev)
        };
        let weight = pattern(7919, 13);
        let mut bn = BatchNorm2d::<A>::new(gamma.len(), &dev);
        bn.gamma = Param::from_tensor(Tensor::from_floats(gamma, &dev).require_grad());
        bn.beta = Param::from_tensor(Tensor::from_floats(beta, &dev).require_grad());
        let x = x.clone().require_grad();
        let residual = matches!(mode, Mode::ReluResidual | Mode::Residual)
            .then(|| (pattern(31, 7) * 0.5).require_grad());
        let with_relu = matches!(mode, Mode::Relu | Mode::ReluResidual);
        let y = match (mode, fused) {
            (Mode::Plain, true) => bn.fused_forward(&x, None, false),
            (_, true) => bn.fused_forward(&x, residual.as_ref(), with_relu),
            (Mode::Plain, false) => Some(bn.generic_forward(x.clone())),
            (_, false) => {
                let y = bn.generic_forward(x.clone());
                let y = residual.clone().map_or(y.clone(), |r| y + r);
                Some(if with_relu { relu(y) } else { y })
            }
        }
        .expect("flex autodiff takes the fused path");
        let vals = |t: Tensor<A, 1>| t.into_data().to_vec::<f32>().unwrap();
        let grad = |t: &Tensor<A, 4>, g| t.grad(g).unwrap().into_data().to_vec().unwrap();
        let grad1 = |t: Tensor<A, 1>, g| t.grad(g).unwrap().into_data().to_vec::<f32>().unwrap();
        let y_vals: Vec<f32> = y.clone().into_data().to_vec().unwrap();
        let g = (y * weight).sum().backward();
        [
            y_vals,
            grad(&x, &g),
            grad1(bn.gamma.val(), &g),
            grad1(bn.beta.val(), &g),
            residual.map_or(Vec::new(), |r| grad(&r, &g)),
            vals(bn.running_mean.value_sync()),
            vals(bn.running_var.value_sync()),
        ]
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 2e-5 * scale, "{what}[{i}]: {x} vs {y}");
        }
    }

    #[test]
    fn fused_kernel_matches_the_generic_path_and_burns_batch_norm_with_relu_and_residual() {
        let dev = Default::default();
        // Mean far from 0 (the fused statistics shift by a sample) and
        // rows of 30 and of 35 values (16 lanes plus remainders).
        for shape in [[4, 3, 5, 6], [3, 2, 5, 7]] {
            let x = Tensor::<A, 4>::random(shape, Distribution::Normal(20.0, 3.0), &dev);
            let g: Vec<f32> = (0..shape[1]).map(|i| 0.5 + i as f32).collect();
            let b: Vec<f32> = (0..shape[1]).map(|i| 1.0 - i as f32).collect();
            let names = [
                "y",
                "dx",
                "dgamma",
                "dbeta",
                "dresidual",
                "running mean",
                "running var",
            ];
            for mode in [Mode::Plain, Mode::Relu, Mode::ReluResidual, Mode::Residual] {
                let fused = step(&g, &b, &x, mode, true);
                let generic = step(&g, &b, &x, mode, false);
                for ((f, g), name) in fused.iter().zip(&generic).zip(names) {
                    close(f, g, &format!("{shape:?} {mode:?} {name}"));
                }
            }
            let fused = step(&g, &b, &x, Mode::Plain, true);
            // burn's module differs only in the running variance, not in
            // the training output or its gradients.
            let theirs = burn::nn::BatchNormConfig::new(shape[1]).init::<A>(&dev);
            let theirs = burn::nn::BatchNorm {
                gamma: Param::from_tensor(Tensor::from_floats(g.as_slice(), &dev)),
                beta: Param::from_tensor(Tensor::from_floats(b.as_slice(), &dev)),
                ..theirs
            };
            let xb = x.clone().require_grad();
            let weight: Vec<f32> = (0..x.dims().iter().product::<usize>())
                .map(|i| ((i * 7919) % 13) as f32 - 6.0)
                .collect();
            let weight = Tensor::<A, 4>::from_floats(TensorData::new(weight, x.dims()), &dev);
            let grads = (theirs.forward(xb.clone()) * weight).sum().backward();
            let dx: Vec<f32> = xb.grad(&grads).unwrap().into_data().to_vec().unwrap();
            close(&fused[1], &dx, &format!("{shape:?} dx vs burn"));
        }
    }

    /// Evaluation on plain flex (fused) equals the generic path, with and
    /// without ReLU and residual.
    #[test]
    fn fused_evaluation_matches_the_generic_path() {
        let dev = Default::default();
        let mut bn = BatchNorm2d::<I>::new(3, &dev);
        bn.running_mean = RunningState::new(Tensor::from_floats([1.0, -2.0, 0.5], &dev));
        bn.running_var = RunningState::new(Tensor::from_floats([4.0, 0.5, 0.25], &dev));
        bn.gamma = Param::from_tensor(Tensor::from_floats([0.5, 1.5, -1.0], &dev));
        bn.beta = Param::from_tensor(Tensor::from_floats([0.1, 0.0, 2.0], &dev));
        let x = input::<I>(&dev);
        let r = Tensor::<I, 4>::random([4, 3, 5, 6], Distribution::Normal(0.0, 1.0), &dev);
        let vals = |t: Tensor<I, 4>| t.into_data().to_vec::<f32>().unwrap();
        let generic = bn.generic_forward(x.clone());
        for (ours, want) in [
            (bn.forward(x.clone()), generic.clone()),
            (bn.forward_relu(x.clone(), None), relu(generic.clone())),
            (
                bn.forward_relu(x.clone(), Some(r.clone())),
                relu(generic + r),
            ),
        ] {
            close(&vals(ours), &vals(want), "evaluation");
        }
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
