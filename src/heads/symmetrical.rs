//! The symmetrical layer of "Do Neural Network Weights account for Classes
//! Centers?" (Kansizoglou et al., IEEE TNNLS 2022), field notes §2.
//!
//! Two learnable vectors `v1, v2` (initialised uniform in [0, 1) as in the
//! authors' code) span a plane; Gram-Schmidt gives its orthonormal basis
//! `n1, n2`, and the class weights are the regular polygon
//! `w_k = cos(2 pi k / C) n1 + sin(2 pi k / C) n2`: unit, coplanar, summing
//! to zero. Logits are `s cos(x, w_k)` with no bias (s = 16 by default).
//!
//! The authors build `w_k` as `R_k n1` with C full D x D rotation matrices;
//! the closed form here is the same vector in O(C D) (tested against `R_k`).
//!
//! Beyond the paper: the fixed s caps the target probability at
//! `p_max = e^s / sum_j e^(s cos(2 pi j / C))` (C = 10, s = 16: 0.914;
//! C = 100: 0.0995). `p_max = P` picks the smallest s reaching P for the
//! given C (`--head-param s=auto` is `p_max = 0.99`), and `learn_scale = 1`
//! makes s a parameter.
//!
//! Guard: `|u| -> 0` (v2 parallel to v1) would divide by zero; like
//! `F.normalize`, the norms are clamped at 1e-12, so the weights then
//! collapse to `cos(theta_k) n1` instead of becoming NaN.

use super::Head;
use super::params::{
    Check, HeadDesc, HeadError, LEARN_SCALE, ParamDef, Params, SCALE_16, no_check,
};
use super::{HeadOps, ScaleParam, l2_normalize};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use std::f64::consts::PI;

/// Builds a [`SymmetricalHead`].
#[derive(Config, Debug)]
pub struct SymmetricalHeadConfig {
    /// Feature dimension D (>= 2).
    pub features: usize,
    /// Classes C (>= 2).
    pub classes: usize,
    /// Logit scale s.
    #[config(default = 16.0)]
    pub scale: f64,
    /// Learn the scale (initialised at `scale`).
    #[config(default = false)]
    pub learn_scale: bool,
    /// Initialise `v1, v2` zero-mean Gaussian N(0, 1) (head parameter
    /// `init = normal`) instead of the authors' uniform [0, 1): the plane is
    /// then not spanned by two positive vectors (field notes §7).
    #[config(default = false)]
    pub normal_init: bool,
}

/// The symmetrical layer.
#[derive(Module, Debug)]
pub struct SymmetricalHead<B: Backend> {
    /// First plane vector `v1` `[D]`.
    pub v1: Param<Tensor<B, 1>>,
    /// Second plane vector `v2` `[D]`.
    pub v2: Param<Tensor<B, 1>>,
    scale: ScaleParam<B>,
    classes: usize,
}

impl SymmetricalHeadConfig {
    /// Build on `device` with the authors' initialisation (uniform [0, 1))
    /// or, with `normal_init`, a zero-mean Gaussian plane.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SymmetricalHead<B> {
        let dist = if self.normal_init {
            Distribution::Normal(0.0, 1.0)
        } else {
            Distribution::Uniform(0.0, 1.0)
        };
        let init = || Param::from_tensor(Tensor::random([self.features], dist, device));
        SymmetricalHead {
            v1: init(),
            v2: init(),
            scale: ScaleParam::new(self.scale, self.learn_scale, device),
            classes: self.classes,
        }
    }
}

/// `cos(2 pi k / C)` and `sin(2 pi k / C)` for k = 0..C-1.
pub fn polygon_angles(classes: usize) -> (Vec<f32>, Vec<f32>) {
    (0..classes)
        .map(|k| {
            let t = 2.0 * PI * k as f64 / classes as f64;
            (t.cos() as f32, t.sin() as f32)
        })
        .unzip()
}

impl<B: Backend> SymmetricalHead<B> {
    /// Gram-Schmidt basis `(n1, n2)` of the plane of `v1, v2`, each `[1, D]`.
    pub fn basis(&self) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let v1 = self.v1.val().unsqueeze::<2>(); // [1, D]
        let v2 = self.v2.val().unsqueeze::<2>();
        let n1 = l2_normalize(v1);
        let proj = (n1.clone() * v2.clone()).sum_dim(1); // [1, 1] = n1 . v2
        let u = v2 - n1.clone() * proj;
        (n1, l2_normalize(u))
    }

    /// The logit scale s.
    pub fn scale_value(&self) -> f64 {
        self.scale.value()
    }
}

impl<B: Backend> HeadOps<B> for SymmetricalHead<B> {
    /// The layer's own parameters: `weights` is its `[2, D]` pair `v1, v2`
    /// (what `derived_params` exports), no bias.
    fn load_weights(
        &mut self,
        weights: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Result<(), HeadError> {
        if bias.is_some() {
            return Err(HeadError::Other(
                "a bias applies to the softmax head only".into(),
            ));
        }
        let d = self.v1.dims()[0];
        super::margin::check_shape("the plane (v1, v2)", weights.dims(), [2, d])?;
        self.v1 = Param::from_tensor(weights.clone().narrow(0, 0, 1).reshape([d]).detach());
        self.v2 = Param::from_tensor(weights.narrow(0, 1, 1).reshape([d]).detach());
        Ok(())
    }
    fn logits(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        let w = self.class_weights(); // [C, D], unit rows
        self.scale
            .apply(l2_normalize(features).matmul(w.transpose()))
    }

    fn class_weights(&self) -> Tensor<B, 2> {
        let (n1, n2) = self.basis();
        let device = n1.device();
        let (cos, sin) = polygon_angles(self.classes);
        let c = self.classes;
        let cos = Tensor::<B, 1>::from_floats(cos.as_slice(), &device).reshape([c, 1]);
        let sin = Tensor::<B, 1>::from_floats(sin.as_slice(), &device).reshape([c, 1]);
        cos * n1 + sin * n2 // [C, 1] * [1, D] -> [C, D]
    }

    fn derived_params(&self) -> Option<Tensor<B, 2>> {
        Some(Tensor::stack(vec![self.v1.val(), self.v2.val()], 0))
    }

    fn scale(&self) -> Option<f64> {
        Some(self.scale.value())
    }
}

/// `symmetrical`: the paper's layer (field notes §2).
pub(super) const DESC: HeadDesc = HeadDesc {
    name: "symmetrical",
    aliases: &["symmetric"],
    formula: "s cos(x, w_k), w_k = cos(2 pi k/C) n1 + sin(2 pi k/C) n2, plane learned",
    params: &[
        SCALE_16,
        ParamDef {
            name: "p_max",
            default: 0.0,
            doc: "> 0: choose s as the smallest scale whose capped target probability reaches p_max (s=auto: 0.99)",
            check: Check::closed_open(0.0, 1.0, "0 (off) or a probability in (1/C, 1)"),
        },
        LEARN_SCALE,
        ParamDef {
            name: "init",
            default: 0.0,
            doc: "plane initialisation: 0 = uniform (v1, v2 in U[0,1), the authors'), 1 = normal (zero-mean Gaussian N(0,1)); also init=uniform/normal",
            check: Check::Flag,
        },
    ],
    cosine: true,
    learned: true,
    check: no_check,
};

/// Build the symmetrical layer: D >= 2, and `p_max` above 1/C when given.
pub(super) fn init<B: Backend>(
    p: &Params,
    d: usize,
    c: usize,
    device: &B::Device,
) -> Result<Head<B>, HeadError> {
    if d < 2 {
        return Err(HeadError::Other(format!(
            "the symmetrical layer needs D >= 2 and C >= 2, got D = {d}, C = {c}"
        )));
    }
    let p_max = p["p_max"];
    if p_max > 0.0 && p_max <= 1.0 / c as f64 {
        return Err(HeadError::Other(format!(
            "head parameter p_max = {p_max}: must exceed 1/C = {:.4} (uniform probability)",
            1.0 / c as f64
        )));
    }
    let s = if p_max > 0.0 {
        crate::geometry::polygon::scale_for_p_max(c, p_max)
            .map_err(|e| HeadError::Other(format!("head parameter p_max: {e}")))?
    } else {
        p["s"]
    };
    Ok(Head::Symmetrical(
        SymmetricalHeadConfig::new(d, c)
            .with_scale(s)
            .with_learn_scale(p.flag("learn_scale"))
            .with_normal_init(p.flag("init"))
            .init(device),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuTrain};
    use crate::heads::cross_entropy;

    /// Independent f64 reference: the authors' construction through the
    /// D x D rotation matrices R_k = I + (n2 n1^T - n1 n2^T) sin t
    /// + (n1 n1^T + n2 n2^T)(cos t - 1), w_k = R_k n1.
    fn reference_weights(v1: &[f64], v2: &[f64], c: usize) -> Vec<Vec<f64>> {
        let d = v1.len();
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let n1: Vec<f64> = v1.iter().map(|a| a / norm(v1)).collect();
        let dot: f64 = n1.iter().zip(v2).map(|(a, b)| a * b).sum();
        let u: Vec<f64> = v2.iter().zip(&n1).map(|(b, a)| b - dot * a).collect();
        let n2: Vec<f64> = u.iter().map(|a| a / norm(&u)).collect();
        (0..c)
            .map(|k| {
                let t = 2.0 * PI * k as f64 / c as f64;
                (0..d)
                    .map(|i| {
                        (0..d)
                            .map(|j| {
                                let eye = if i == j { 1.0 } else { 0.0 };
                                let r = eye
                                    + (n2[i] * n1[j] - n1[i] * n2[j]) * t.sin()
                                    + (n1[i] * n1[j] + n2[i] * n2[j]) * (t.cos() - 1.0);
                                r * n1[j]
                            })
                            .sum()
                    })
                    .collect()
            })
            .collect()
    }

    fn reference_loss(
        v1: &[f64],
        v2: &[f64],
        x: &[Vec<f64>],
        y: &[usize],
        c: usize,
        s: f64,
    ) -> f64 {
        let w = reference_weights(v1, v2, c);
        let mut total = 0.0;
        for (xi, &yi) in x.iter().zip(y) {
            let xn = xi.iter().map(|a| a * a).sum::<f64>().sqrt();
            let logits: Vec<f64> = w
                .iter()
                .map(|wk| s * wk.iter().zip(xi).map(|(a, b)| a * b).sum::<f64>() / xn)
                .collect();
            let m = logits.iter().cloned().fold(f64::MIN, f64::max);
            let lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
            total += lse - logits[yi];
        }
        total / x.len() as f64
    }

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64) / (1u64 << 53) as f64
        }
    }

    fn head_from(v1: &[f64], v2: &[f64], c: usize, s: f64) -> SymmetricalHead<CpuTrain> {
        let dev = Default::default();
        let mut h = SymmetricalHeadConfig::new(v1.len(), c)
            .with_scale(s)
            .init::<CpuTrain>(&dev);
        let t = |v: &[f64]| {
            let f: Vec<f32> = v.iter().map(|&a| a as f32).collect();
            Param::from_tensor(Tensor::<CpuTrain, 1>::from_floats(f.as_slice(), &dev))
        };
        h.v1 = t(v1);
        h.v2 = t(v2);
        h
    }

    #[test]
    fn weights_are_unit_coplanar_and_sum_to_zero_for_random_params() {
        for (seed, d, c) in [(1, 2, 3), (2, 16, 10), (3, 64, 100), (4, 5, 7)] {
            let dev = Default::default();
            Cpu::seed(&dev, seed);
            let h = SymmetricalHeadConfig::new(d, c).init::<Cpu>(&dev);
            let w: Vec<f32> = h.class_weights().into_data().to_vec().unwrap();
            let (n1, n2) = h.basis();
            let n1: Vec<f32> = n1.into_data().to_vec().unwrap();
            let n2: Vec<f32> = n2.into_data().to_vec().unwrap();
            for k in 0..c {
                let row = &w[k * d..(k + 1) * d];
                let norm: f32 = row.iter().map(|a| a * a).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-6, "norm {norm}");
                // coplanar: the residual after projecting on (n1, n2) vanishes
                let a: f32 = row.iter().zip(&n1).map(|(x, y)| x * y).sum();
                let b: f32 = row.iter().zip(&n2).map(|(x, y)| x * y).sum();
                let resid: f32 = (0..d)
                    .map(|i| (row[i] - a * n1[i] - b * n2[i]).powi(2))
                    .sum::<f32>()
                    .sqrt();
                assert!(resid < 1e-6, "off-plane residual {resid}");
            }
            for i in 0..d {
                // accumulate in f64: the tolerance is about the weights, not the test's sum
                let sum: f64 = (0..c).map(|k| w[k * d + i] as f64).sum();
                assert!(sum.abs() < 1e-6, "sum of weights {sum}");
            }
        }
    }

    #[test]
    fn logits_match_the_rotation_matrix_construction() {
        let mut r = lcg(7);
        let (d, c, s, n) = (6, 5, 16.0, 4);
        let v1: Vec<f64> = (0..d).map(|_| r()).collect();
        let v2: Vec<f64> = (0..d).map(|_| r()).collect();
        let x: Vec<Vec<f64>> = (0..n)
            .map(|_| (0..d).map(|_| r() - 0.5).collect())
            .collect();
        let w = reference_weights(&v1, &v2, c);
        let h = head_from(&v1, &v2, c, s);
        let xf: Vec<f32> = x.iter().flatten().map(|&a| a as f32).collect();
        let xt =
            Tensor::<CpuTrain, 1>::from_floats(xf.as_slice(), &Default::default()).reshape([n, d]);
        let logits: Vec<f32> = h.logits(xt).into_data().to_vec().unwrap();
        for i in 0..n {
            let xn = x[i].iter().map(|a| a * a).sum::<f64>().sqrt();
            for k in 0..c {
                let want = s * w[k].iter().zip(&x[i]).map(|(a, b)| a * b).sum::<f64>() / xn;
                let got = logits[i * c + k] as f64;
                assert!((got - want).abs() < 1e-4, "logit[{i},{k}] {got} vs {want}");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut r = lcg(11);
        let (d, c, s, n) = (5, 4, 4.0, 6);
        let v1: Vec<f64> = (0..d).map(|_| r()).collect();
        let v2: Vec<f64> = (0..d).map(|_| r()).collect();
        let x: Vec<Vec<f64>> = (0..n)
            .map(|_| (0..d).map(|_| r() - 0.3).collect())
            .collect();
        let y: Vec<usize> = (0..n).map(|i| i % c).collect();
        let dev = Default::default();
        let h = head_from(&v1, &v2, c, s);
        let xf: Vec<f32> = x.iter().flatten().map(|&a| a as f32).collect();
        let xt = Tensor::<CpuTrain, 1>::from_floats(xf.as_slice(), &dev).reshape([n, d]);
        let yl: Vec<i64> = y.iter().map(|&a| a as i64).collect();
        let yt = Tensor::<CpuTrain, 1, Int>::from_data(TensorData::new(yl, [n]), &dev);
        let loss = cross_entropy(h.logits(xt), yt);
        let lv: f32 = loss.clone().into_scalar();
        assert!((lv as f64 - reference_loss(&v1, &v2, &x, &y, c, s)).abs() < 1e-5);
        let grads = loss.backward();
        for (which, param) in [(0, &h.v1), (1, &h.v2)] {
            let g: Vec<f32> = param
                .val()
                .grad(&grads)
                .unwrap()
                .into_data()
                .to_vec()
                .unwrap();
            for i in 0..d {
                let eps = 1e-5;
                let bump = |delta: f64| {
                    let (mut a, mut b) = (v1.clone(), v2.clone());
                    if which == 0 {
                        a[i] += delta
                    } else {
                        b[i] += delta
                    }
                    reference_loss(&a, &b, &x, &y, c, s)
                };
                let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
                let got = g[i] as f64;
                assert!(
                    (got - fd).abs() < 1e-4 + 1e-3 * fd.abs(),
                    "dL/dv{}[{i}] {got} vs {fd}",
                    which + 1
                );
            }
        }
    }

    #[test]
    fn parallel_plane_vectors_give_finite_weights() {
        let v: Vec<f64> = vec![0.5, 0.25, 1.0];
        let h = head_from(&v, &v, 4, 16.0);
        let w: Vec<f32> = h.class_weights().into_data().to_vec().unwrap();
        assert!(w.iter().all(|a| a.is_finite()));
    }
}
