//! The binarisation of ReCU (Xu et al., ICCV 2021; field notes §8.2) as
//! tensor operations inside the autodiff graph, on any backend.
//!
//! Weights, per output channel (rows of `[O, K]`):
//! `w0 = w - mean(w)`, `w1 = w0 / (sqrt(var(w0) + 1e-5) / (2 sqrt 2))`
//! (unbiased variance: a Laplace scale of ~2), then with the clamp
//! `w2 = clamp(w1, -Q(tau), Q(tau))`, `Q(tau) = -b ln(2 - 2 tau)`,
//! `b = mean |w1|` over the layer (no gradient through `Q`); the binary
//! weight is `sign(w2)` with the identity straight-through gradient. The
//! clamp never changes a sign: it only zeroes the gradient of the clamped
//! weights (which still receive gradient through the standardisation).
//!
//! Activations, per sample: `a0 = a / sqrt(var(a) + 1e-5)` in training,
//! then `sign(a0)` with ApproxSign's gradient `max(0, 2 - |2 a0|)`
//! (Bi-Real Net). Evaluation skips the scaling (a sign is scale-free).
//!
//! Tie rule, here and in the bit-packed kernel: `sign(0) = +1` (a bit can
//! only hold two values; PyTorch's `sign(0) = 0` differs only on exact
//! zeros).
//!
//! Forward values are exact: the straight-through terms are `x - x`, which
//! is 0 for every finite `x`, so the layer computes with exactly +-1.

use burn::prelude::*;

/// `+1` where `x >= 0`, `-1` elsewhere, no gradient.
pub fn sign<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.greater_equal_elem(0.0).float() * 2.0 - 1.0
}

/// `sign(x)` in the forward pass, the gradient of `surrogate` in the
/// backward pass (`surrogate` is computed from `x`).
fn straight_through<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    surrogate: Tensor<B, D>,
) -> Tensor<B, D> {
    sign(x) + (surrogate.clone() - surrogate.detach())
}

/// Per-row standardisation of `[O, K]` weights (ReCU's `w1`).
pub fn standardize<B: Backend>(w: Tensor<B, 2>) -> Tensor<B, 2> {
    let [_, k] = w.dims();
    let w0 = w.clone() - w.mean_dim(1);
    // Unbiased variance, as torch.var.
    let var = w0.clone().powi_scalar(2).sum_dim(1) / (k.saturating_sub(1).max(1) as f64);
    let scale = (var + 1e-5).sqrt() / (2.0 * std::f64::consts::SQRT_2);
    w0 / scale
}

/// ReCU's clamp bound `Q(tau) = -b ln(2 - 2 tau)` with `b = mean |w1|`, as
/// a `[1, 1]` tensor without gradient.
pub fn clamp_bound<B: Backend>(w1: &Tensor<B, 2>, tau: f64) -> Tensor<B, 2> {
    let b = w1.clone().detach().abs().mean().reshape([1, 1]);
    b * (-(2.0 - 2.0 * tau).ln())
}

/// The binary weights `sign(w2)` of `[O, K]` latent weights, with the
/// identity straight-through gradient to `w2` (and, through the clamp and
/// the standardisation, to `w`). `tau`: ReCU's clamp; `None`: plain sign.
pub fn binary_weights<B: Backend>(w: Tensor<B, 2>, tau: Option<f64>) -> Tensor<B, 2> {
    let w1 = standardize(w);
    let w2 = match tau {
        Some(tau) => {
            let shape = w1.dims();
            let q = clamp_bound(&w1, tau).expand(shape);
            w1.max_pair(q.clone().neg()).min_pair(q)
        }
        None => w1,
    };
    straight_through(w2.clone(), w2)
}

/// Binary activations of `[N, ...]` inputs (flattened per sample to
/// `[N, F]` by the caller): `sign(a0)` with ApproxSign's gradient.
pub fn binary_activations<B: Backend>(a: Tensor<B, 2>) -> Tensor<B, 2> {
    if !B::ad_enabled(&a.device()) {
        return sign(a);
    }
    if let Some(y) = crate::kernels::binary_act::forward(&a) {
        return y;
    }
    generic_activations(a)
}

/// [`binary_activations`] in burn operations (any backend, in training).
pub(crate) fn generic_activations<B: Backend>(a: Tensor<B, 2>) -> Tensor<B, 2> {
    let [_, f] = a.dims();
    let centered = a.clone() - a.clone().mean_dim(1);
    let var = centered.powi_scalar(2).sum_dim(1) / (f.saturating_sub(1).max(1) as f64);
    let a0 = a / (var + 1e-5).sqrt();
    // ApproxSign: F(a) = 2c - c|c| with c = clamp(a, -1, 1), whose
    // derivative is 2 - 2|a| inside [-1, 1] and 0 outside.
    let c = a0.clone().clamp(-1.0, 1.0);
    let surrogate = c.clone() * 2.0 - c.clone() * c.abs();
    straight_through(a0, surrogate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuTrain;
    use crate::kernels::test_util::vals;

    fn t2(v: &[f32], shape: [usize; 2]) -> Tensor<CpuTrain, 2> {
        Tensor::<CpuTrain, 1>::from_floats(v, &Default::default())
            .reshape(shape)
            .require_grad()
    }

    /// The standardised weights against an f64 computation.
    #[test]
    fn standardization_matches_the_formula() {
        let w = [0.3f32, -1.2, 0.5, 2.0, -0.1, 0.05, 0.7, -0.4];
        let got = vals(standardize(t2(&w, [2, 4])));
        for r in 0..2 {
            let row: Vec<f64> = w[4 * r..4 * r + 4].iter().map(|&x| x as f64).collect();
            let m = row.iter().sum::<f64>() / 4.0;
            let var = row.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 3.0;
            let s = (var + 1e-5).sqrt() / (2.0 * 2f64.sqrt());
            for c in 0..4 {
                let want = (row[c] - m) / s;
                assert!((got[4 * r + c] as f64 - want).abs() < 1e-4, "{r} {c}");
            }
        }
    }

    /// Backward of the binary weights: identity through the sign, zero for
    /// the clamped weights at the clamp, and the standardisation's
    /// Jacobian; checked against `d/dw sum(g * w2)` by central differences
    /// of the (smooth, unclamped) map `w -> w2` on the same clamp pattern.
    #[test]
    fn weight_gradient_is_identity_through_sign_and_zero_when_clamped() {
        let dev = Default::default();
        // One row with a far outlier: at tau = 0.6, Q = -b ln(0.8) is small,
        // so several weights are clamped.
        let w = [0.1f32, -0.2, 0.05, 3.0, -0.15, 0.3, -2.5, 0.0];
        let g = [0.7f32, -0.3, 0.2, 1.1, 0.5, -0.9, 0.4, 0.6];
        let tau = 0.6;
        let wt = t2(&w, [1, 8]);
        let gt = Tensor::<CpuTrain, 1>::from_floats(g.as_slice(), &dev).reshape([1, 8]);
        let y = binary_weights(wt.clone(), Some(tau));
        // Forward: exactly sign(w - mean).
        let m = w.iter().sum::<f32>() / 8.0;
        let want: Vec<f32> = w
            .iter()
            .map(|&x| if x - m >= 0.0 { 1.0 } else { -1.0 })
            .collect();
        assert_eq!(vals(y.clone()), want);
        let grads = (y * gt).sum().backward();
        let got = vals(wt.grad(&grads).unwrap().reshape([1, 8]));
        // f64: w1(w), the clamp mask at w, d/dw sum(g * mask * w1) by
        // central differences with the mask held fixed.
        let w64: Vec<f64> = w.iter().map(|&x| x as f64).collect();
        let w1 = |w: &[f64]| -> Vec<f64> {
            let m = w.iter().sum::<f64>() / 8.0;
            let var = w.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 7.0;
            let s = (var + 1e-5).sqrt() / (2.0 * 2f64.sqrt());
            w.iter().map(|x| (x - m) / s).collect()
        };
        let base = w1(&w64);
        let b = base.iter().map(|x| x.abs()).sum::<f64>() / 8.0;
        let q = -b * (2.0 - 2.0 * tau).ln();
        let mask: Vec<f64> = base.iter().map(|x| (x.abs() <= q) as u8 as f64).collect();
        assert!(
            mask.iter().filter(|m| **m == 0.0).count() >= 2,
            "{base:?} q {q}"
        );
        let f = |w: &[f64]| -> f64 {
            w1(w)
                .iter()
                .zip(&g)
                .zip(&mask)
                .map(|((x, g), m)| x * *g as f64 * m)
                .sum()
        };
        for i in 0..8 {
            let h = 1e-6;
            let (mut p, mut n) = (w64.clone(), w64.clone());
            p[i] += h;
            n[i] -= h;
            let fd = (f(&p) - f(&n)) / (2.0 * h);
            assert!(
                (got[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                "w[{i}]: autodiff {} vs {fd}",
                got[i]
            );
        }
        // Without the clamp (plain sign) no weight's own path is cut.
        let wt = t2(&w, [1, 8]);
        let y = binary_weights(wt.clone(), None);
        let gt = Tensor::<CpuTrain, 1>::from_floats(g.as_slice(), &dev).reshape([1, 8]);
        let grads = (y * gt).sum().backward();
        let plain = vals(wt.grad(&grads).unwrap().reshape([1, 8]));
        assert!(plain.iter().zip(&got).any(|(a, b)| (a - b).abs() > 1e-3));
    }

    /// ApproxSign: forward sign(a), backward g * max(0, 2 - |2 a0|) with
    /// `a0` the per-sample scaled input, by hand.
    #[test]
    fn activation_gradient_is_approx_sign_of_the_scaled_input() {
        let a = [0.2f32, -0.6, 1.5, -0.05, 0.0, 0.9];
        let at = t2(&a, [1, 6]);
        let y = binary_activations(at.clone());
        assert_eq!(vals(y.clone()), vec![1.0, -1.0, 1.0, -1.0, 1.0, 1.0]);
        let g = [1.0f32, 2.0, -1.0, 0.5, 1.0, -2.0];
        let gt =
            Tensor::<CpuTrain, 1>::from_floats(g.as_slice(), &Default::default()).reshape([1, 6]);
        let grads = (y * gt).sum().backward();
        let got = vals(at.grad(&grads).unwrap().reshape([1, 6]));
        // a0 = a / s with s = sqrt(var(a) + 1e-5); through a0 = a / s(a)
        // the gradient of sum(g * F(a0)) is the chain rule over s too.
        let a64: Vec<f64> = a.iter().map(|&x| x as f64).collect();
        let f = |a: &[f64]| -> f64 {
            let m = a.iter().sum::<f64>() / 6.0;
            let var = a.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 5.0;
            let s = (var + 1e-5).sqrt();
            a.iter()
                .zip(&g)
                .map(|(x, g)| {
                    let c = (x / s).clamp(-1.0, 1.0);
                    (2.0 * c - c * c.abs()) * *g as f64
                })
                .sum()
        };
        for i in 0..6 {
            let h = 1e-6;
            let (mut p, mut n) = (a64.clone(), a64.clone());
            p[i] += h;
            n[i] -= h;
            let fd = (f(&p) - f(&n)) / (2.0 * h);
            assert!(
                (got[i] as f64 - fd).abs() < 1e-3,
                "a[{i}]: {} vs {fd}",
                got[i]
            );
        }
        // Outside [-1, 1] after scaling: no own gradient (a[2] = 1.5 is
        // 1.9 sigma away), and the hand formula's own term is zero.
        let m = a64.iter().sum::<f64>() / 6.0;
        let s = (a64.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 5.0 + 1e-5).sqrt();
        assert!(a64[2] / s > 1.0);
    }

    /// The CPU kernel against the burn operations: values and gradients.
    #[test]
    fn activation_kernel_matches_the_burn_operations() {
        use burn::tensor::Distribution;
        let dev = Default::default();
        let x = Tensor::<CpuTrain, 2>::random([5, 37], Distribution::Normal(0.3, 1.2), &dev);
        let g = Tensor::<CpuTrain, 2>::random([5, 37], Distribution::Normal(0.0, 1.0), &dev);
        let (a, b) = (x.clone().require_grad(), x.require_grad());
        let ya = binary_activations(a.clone());
        let yb = generic_activations(b.clone());
        assert_eq!(vals(ya.clone()), vals(yb.clone()));
        let ga = vals(
            a.grad(&(ya * g.clone()).sum().backward())
                .unwrap()
                .reshape([185]),
        );
        let gb = vals(b.grad(&(yb * g).sum().backward()).unwrap().reshape([185]));
        for (i, (p, q)) in ga.iter().zip(&gb).enumerate() {
            assert!((p - q).abs() < 1e-4 * (1.0 + q.abs()), "{i}: {p} vs {q}");
        }
        assert!(ga.iter().any(|v| *v != 0.0));
    }
}
