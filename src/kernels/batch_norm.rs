//! Batch normalisation (+ residual, + ReLU) on the CPU backend: training on
//! `Autodiff<Flex>` as one autodiff operation (statistics, normalisation
//! and the backward pass each one parallel sweep), evaluation on `Flex` as
//! one sweep; instead of the ten burn operations of the generic path of
//! [`crate::nets::BatchNorm2d`], which ran serially: on ResNet-20 (batch
//! 128, 2 threads) the calling thread ran alone for a fifth of a step,
//! mostly in them.

use std::any::TypeId;
use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::flex::{AdTensor, FlexAd, flex_tensor, lanes, primitive, record, same, values, zeros};

/// Rows of `[N, C, H W]`: row `r` is image `r / C`, channel `r % C`.
#[derive(Debug, Clone, Copy)]
struct Dims {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

impl Dims {
    fn count(&self) -> usize {
        self.n * self.hw
    }

    /// The `N` rows of channel `ch` of `v`.
    fn rows<'a>(&self, v: &'a [f32], ch: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (c, hw) = (self.c, self.hw);
        (0..self.n).map(move |i| &v[(i * c + ch) * hw..][..hw])
    }
}

/// `sum f(a_j, b_j)` over a row ([`lanes`]), the lanes added in f64.
#[inline(always)]
fn sum64(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let (acc, rest) = lanes(a, b, f);
    acc.iter().map(|&v| v as f64).sum::<f64>() + rest as f64
}

/// Per channel: the batch mean and the biased variance, accumulated in
/// f64 per row around the channel's first value.
fn stats(x: &[f32], d: Dims) -> Vec<(f64, f64)> {
    (0..d.c)
        .into_par_iter()
        .map(|ch| {
            let shift = x[ch * d.hw];
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for row in d.rows(x, ch) {
                s1 += sum64(row, row, |v, _| v - shift);
                s2 += sum64(row, row, |v, _| (v - shift) * (v - shift));
            }
            let m = d.count() as f64;
            let mean = s1 / m;
            (shift as f64 + mean, (s2 / m - mean * mean).max(0.0))
        })
        .collect()
}

/// What the backward pass needs of one channel.
#[derive(Debug, Clone, Copy)]
struct Channel {
    mean: f32,
    invstd: f32,
    /// `gamma invstd`.
    scale: f32,
    beta: f32,
}

/// `y = (x - mean) gamma / sqrt(var + eps) + beta (+ residual)`, then
/// `max(y, 0)` when `relu`.
fn normalize(x: &[f32], r: Option<&[f32]>, relu: bool, d: Dims, ch: &[Channel]) -> Vec<f32> {
    let mut y = zeros(x.len());
    y.par_chunks_mut(d.hw)
        .zip(x.par_chunks(d.hw))
        .enumerate()
        .for_each(|(row, (yr, xr))| {
            let s = &ch[row % d.c];
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = (v - s.mean) * s.scale + s.beta;
            }
            if let Some(r) = r {
                yr.iter_mut()
                    .zip(&r[row * d.hw..][..d.hw])
                    .for_each(|(o, &v)| *o += v);
            }
            if relu {
                yr.iter_mut().for_each(|o| *o = o.max(0.0));
            }
        });
    y
}

/// Gradients of `x`, `gamma` and `beta` for the normalisation's output
/// gradient `g`.
fn backward(x: &[f32], g: &[f32], d: Dims, ch: &[Channel]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // Per channel: sum g and sum g (x - mean).
    let sums: Vec<(f64, f64)> = (0..d.c)
        .into_par_iter()
        .map(|c| {
            let mean = ch[c].mean;
            d.rows(x, c)
                .zip(d.rows(g, c))
                .fold((0.0, 0.0), |(a, b), (xr, gr)| {
                    (
                        a + sum64(gr, gr, |g, _| g),
                        b + sum64(xr, gr, |v, g| g * (v - mean)),
                    )
                })
        })
        .collect();
    let m = d.count() as f64;
    // dx = gamma invstd (g - sum g / m - (x - mean) invstd^2 sum g (x - mean) / m).
    let k: Vec<[f32; 3]> = ch
        .iter()
        .zip(&sums)
        .map(|(s, &(sg, sgx))| {
            let inv = s.invstd as f64;
            [s.scale, (sg / m) as f32, (inv * inv * sgx / m) as f32]
        })
        .collect();
    let mut dx = zeros(x.len());
    dx.par_chunks_mut(d.hw)
        .zip(x.par_chunks(d.hw).zip(g.par_chunks(d.hw)))
        .enumerate()
        .for_each(|(r, (out, (xr, gr)))| {
            let (s, [k1, k2, k3]) = (&ch[r % d.c], k[r % d.c]);
            for ((o, &v), &g) in out.iter_mut().zip(xr).zip(gr) {
                *o = k1 * (g - k2 - (v - s.mean) * k3);
            }
        });
    let dgamma = ch
        .iter()
        .zip(&sums)
        .map(|(s, &(_, sgx))| (sgx * s.invstd as f64) as f32);
    let dbeta = sums.iter().map(|&(sg, _)| sg as f32);
    (dx, dgamma.collect(), dbeta.collect())
}

/// The autodiff node; parents `x`, `gamma`, `beta` and, with a residual,
/// the residual. State: `x`'s checkpoint, the channels, the dimensions,
/// and the output when a ReLU ends the operation (its mask).
#[derive(Debug)]
struct BatchNormBackward;

type State = (NodeId, Arc<Vec<Channel>>, Dims, Option<FlexTensor>);

impl<const N: usize> Backward<Flex, N> for BatchNormBackward {
    type State = State;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x_id, ch, d, relu_out) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_id);
        let (xv, shape) = values(&x).expect("f32 input");
        let (dy, _) = values(&grad).expect("f32 gradient");
        // Through the ReLU: zero where the output is 0.
        let g: Vec<f32> = match &relu_out {
            Some(y) => {
                let (yv, _) = values(y).expect("f32 output");
                let mut g = zeros(dy.len());
                g.par_chunks_mut(d.hw)
                    .zip(dy.par_chunks(d.hw).zip(yv.par_chunks(d.hw)))
                    .for_each(|(o, (gr, yr))| {
                        for ((o, &g), &y) in o.iter_mut().zip(gr).zip(yr) {
                            *o = if y > 0.0 { g } else { 0.0 };
                        }
                    });
                g
            }
            None => dy.into_owned(),
        };
        let parents = &ops.parents;
        let wants_bn = parents[..3].iter().any(Option::is_some);
        if wants_bn {
            let (dx, dgamma, dbeta) = backward(&xv, &g, d, &ch);
            for (node, (value, dims)) in parents[..3].iter().zip([
                (dx, shape.clone()),
                (dgamma, vec![d.c]),
                (dbeta, vec![d.c]),
            ]) {
                if let Some(node) = node {
                    grads.register::<Flex>(node.id, flex_tensor(value, dims));
                }
            }
        }
        if let Some(Some(node)) = parents.get(3) {
            grads.register::<Flex>(node.id, flex_tensor(g, shape));
        }
    }
}

/// Per channel, from `(mean, variance)`, `gamma` and `beta`.
fn channels(stats: &[(f64, f64)], gamma: &[f32], beta: &[f32], epsilon: f64) -> Vec<Channel> {
    stats
        .iter()
        .zip(gamma.iter().zip(beta))
        .map(|(&(mean, var), (&gamma, &beta))| {
            let invstd = (1.0 / (var + epsilon).sqrt()) as f32;
            Channel {
                mean: mean as f32,
                invstd,
                scale: gamma * invstd,
                beta,
            }
        })
        .collect()
}

/// Evaluation on plain flex: `relu?(bn(x) + residual?)` with the running
/// statistics; `[mean, var, gamma, beta]` are `[C]` tensors. `None` when
/// the tensors are not f32 of matching shapes.
fn evaluate(
    x: &FlexTensor,
    residual: Option<&FlexTensor>,
    relu: bool,
    [mean, var, gamma, beta]: [&FlexTensor; 4],
    epsilon: f64,
) -> Option<FlexTensor> {
    let (xv, shape) = values(x)?;
    let [n, c, h, w]: [usize; 4] = shape.as_slice().try_into().ok()?;
    if n * h * w == 0 {
        return None;
    }
    let per_channel = |t: &FlexTensor| {
        values(t)
            .map(|(v, _)| v.into_owned())
            .filter(|v| v.len() == c)
    };
    let (mv, vv) = (per_channel(mean)?, per_channel(var)?);
    let (gv, bv) = (per_channel(gamma)?, per_channel(beta)?);
    let rv = match residual {
        Some(r) => Some(values(r)?).filter(|(_, s)| *s == shape),
        None => None,
    };
    if residual.is_some() != rv.is_some() {
        return None;
    }
    let stats: Vec<(f64, f64)> = mv
        .iter()
        .zip(&vv)
        .map(|(&m, &v)| (m as f64, v as f64))
        .collect();
    let d = Dims { n, c, hw: h * w };
    let ch = channels(&stats, &gv, &bv, epsilon);
    Some(flex_tensor(
        normalize(&xv, rv.as_ref().map(|r| &r.0[..]), relu, d, &ch),
        shape,
    ))
}

/// The training forward of `relu?(bn(x) + residual?)` on `Autodiff<Flex>`
/// primitives: the output and the batch `(mean, biased variance)` per
/// channel; `None` when the tensors are not f32 `[N, C, H, W]` / `[C]`
/// (and a residual of `x`'s shape).
fn train_forward(
    x: AdTensor,
    gamma: AdTensor,
    beta: AdTensor,
    residual: Option<AdTensor>,
    relu: bool,
    epsilon: f64,
) -> Option<(AdTensor, Vec<(f64, f64)>)> {
    let (xv, shape) = values(&x.primitive)?;
    let [n, c, h, w]: [usize; 4] = shape.as_slice().try_into().ok()?;
    let (gv, _) = values(&gamma.primitive)?;
    let (bv, _) = values(&beta.primitive)?;
    let rv = match &residual {
        Some(r) => Some(values(&r.primitive)?).filter(|(_, s)| *s == shape),
        None => None,
    };
    if gv.len() != c || bv.len() != c || n * h * w == 0 || residual.is_some() != rv.is_some() {
        return None;
    }
    let d = Dims { n, c, hw: h * w };
    let st = stats(&xv, d);
    let channels = channels(&st, &gv, &bv, epsilon);
    let y = flex_tensor(
        normalize(&xv, rv.as_ref().map(|r| &r.0[..]), relu, d, &channels),
        shape,
    );
    let mask = relu.then(|| y.clone());
    let out = match &residual {
        Some(r) => record!(
            BatchNormBackward,
            [x, gamma, beta, r],
            |prep| (prep.checkpoint(&x), Arc::new(channels), d, mask),
            y
        ),
        None => record!(
            BatchNormBackward,
            [x, gamma, beta],
            |prep| (prep.checkpoint(&x), Arc::new(channels), d, mask),
            y
        ),
    };
    Some((out, st))
}

/// A BatchNorm2d layer's parameters and running statistics (`[C]` each).
pub(crate) struct Params<B: Backend> {
    pub gamma: Tensor<B, 1>,
    pub beta: Tensor<B, 1>,
    pub running_mean: Tensor<B, 1>,
    pub running_var: Tensor<B, 1>,
    pub epsilon: f64,
}

/// `relu?(bn(x) + residual?)` through the kernels above: on `Flex`, the
/// evaluation with the running statistics (second value `None`); on
/// `Autodiff<Flex>`, the training forward and the batch `(mean, biased
/// variance)` per channel, for the caller's running statistics. `None` on
/// other backends or tensors the kernels do not take.
#[allow(clippy::type_complexity)]
pub(crate) fn forward<B: Backend>(
    x: &Tensor<B, 4>,
    residual: Option<&Tensor<B, 4>>,
    relu: bool,
    p: Params<B>,
) -> Option<(Tensor<B, 4>, Option<Vec<(f64, f64)>>)> {
    if TypeId::of::<B>() == TypeId::of::<Flex>() {
        let plain = |t: Tensor<B, 1>| -> FlexTensor { same(primitive(t)) };
        let stats = [
            plain(p.running_mean),
            plain(p.running_var),
            plain(p.gamma),
            plain(p.beta),
        ];
        let y = evaluate(
            &same(primitive(x.clone())),
            residual.map(|r| same(primitive(r.clone()))).as_ref(),
            relu,
            [&stats[0], &stats[1], &stats[2], &stats[3]],
            p.epsilon,
        )?;
        return Some((
            Tensor::from_primitive(TensorPrimitive::Float(same(y))),
            None,
        ));
    }
    if TypeId::of::<B>() != TypeId::of::<FlexAd>() {
        return None;
    }
    let (y, stats) = train_forward(
        same(primitive(x.clone())),
        same(primitive(p.gamma)),
        same(primitive(p.beta)),
        residual.map(|r| same(primitive(r.clone()))),
        relu,
        p.epsilon,
    )?;
    Some((
        Tensor::from_primitive(TensorPrimitive::Float(same(y))),
        Some(stats),
    ))
}
