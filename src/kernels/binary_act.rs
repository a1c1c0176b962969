//! ReCU's binary activations (field notes §8.2, `nets::binary::recu`) as
//! one autodiff operation on the CPU backend: per sample (row of
//! `[N, F]`), `s = sqrt(var(a) + 1e-5)` (unbiased), `a0 = a / s`, output
//! `sign(a)` (+1 where `a >= 0`), and ApproxSign's gradient through `a0`
//! and `s`:
//!
//! ```text
//! u_i   = g_i max(0, 2 - 2 |a0_i|)
//! dL/da_i = u_i / s - (a_i - mean(a)) (sum_j u_j a_j) / ((F - 1) s^3)
//! ```
//!
//! Why: in burn operations the per-sample mean, variance and scale are
//! broadcasts that burn-flex runs through its strided iterator; binary
//! ResNet-20 trained at ~100 img/s, most of the step in those ops (`perf`,
//! 2026-12-02). Chosen by `TypeId` like [`super::conv`]; other backends use
//! the burn operations of `nets::binary::recu`.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;
use std::sync::Arc;

use super::flex::{self, flex_tensor, values};

/// What the backward pass needs.
#[derive(Debug, Clone)]
struct State {
    x: Arc<Vec<f32>>,
    n: usize,
    f: usize,
    /// Per row: mean and scale s.
    stats: Arc<Vec<(f32, f32)>>,
}

fn row_stats(row: &[f32]) -> (f32, f32) {
    let f = row.len();
    let m = row.iter().map(|&v| v as f64).sum::<f64>() / f as f64;
    let var = row.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / (f.max(2) - 1) as f64;
    (m as f32, (var + 1e-5).sqrt() as f32)
}

fn forward_values(x: &[f32], f: usize) -> (Vec<f32>, Vec<(f32, f32)>) {
    let y: Vec<f32> = x
        .par_iter()
        .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
        .collect();
    let stats = x.par_chunks(f).map(row_stats).collect();
    (y, stats)
}

fn backward_values(st: &State, dy: &[f32]) -> Vec<f32> {
    let f = st.f;
    let mut dx = vec![0f32; st.n * f];
    dx.par_chunks_mut(f)
        .zip(dy.par_chunks(f))
        .zip(st.x.par_chunks(f))
        .zip(st.stats.par_iter())
        .for_each(|(((dx, g), a), &(m, s))| {
            let inv = 1.0 / s;
            let mut dot = 0f64;
            for ((d, &g), &a) in dx.iter_mut().zip(g).zip(a) {
                let u = g * (2.0 - 2.0 * (a * inv).abs()).max(0.0);
                *d = u;
                dot += (u * a) as f64;
            }
            let k = (dot / ((f.max(2) - 1) as f64 * (s as f64).powi(3))) as f32;
            for (d, &a) in dx.iter_mut().zip(a) {
                *d = *d * inv - (a - m) * k;
            }
        });
    dx
}

#[derive(Debug)]
struct BinaryActBackward;

impl Backward<Flex, 1> for BinaryActBackward {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let st = ops.state;
        if let Some(node) = &ops.parents[0] {
            let (dy, _) = values(&grad).expect("f32 gradient of f32 activations");
            let dx = backward_values(&st, &dy);
            grads.register::<Flex>(node.id, flex_tensor(dx, vec![st.n, st.f]));
        }
    }
}

fn flex_forward(x: &FlexTensor) -> Option<(FlexTensor, State)> {
    let (xv, dims) = values(x)?;
    let [n, f]: [usize; 2] = dims.as_slice().try_into().ok()?;
    (f > 0).then_some(())?;
    let (y, stats) = forward_values(&xv, f);
    let st = State {
        x: Arc::new(xv.into_owned()),
        n,
        f,
        stats: Arc::new(stats),
    };
    Some((flex_tensor(y, vec![n, f]), st))
}

/// The binary activations of `a` `[N, F]` on `Flex` / `Autodiff<Flex>`;
/// `None` on other backends.
pub fn forward<B: Backend>(a: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    flex::unary(a, BinaryActBackward, flex_forward)
}
