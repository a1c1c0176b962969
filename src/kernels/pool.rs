//! symfeat's 2-D max pooling for the CPU backend (no padding, no dilation),
//! forward and backward as one autodiff operation.
//!
//! Why: burn-flex 0.21's `max_pool2d_with_indices` and its backward took
//! 25 ms of a 89 ms training step of the reference CNN (batch 128, 2
//! threads; timed in isolation: 17.9 ms for `[128, 32, 28, 28]`, 7.5 ms for
//! `[128, 64, 14, 14]`, forward plus backward). Here one pass over each
//! plane keeps the winner's offset in its plane (the first maximum of a
//! window, as burn and PyTorch), and the backward pass adds each output
//! gradient at that offset. Chosen by `TypeId` like [`super::conv`]; other
//! backends and options use burn's `max_pool2d`.
//!
//! Also global average pooling ([`global_avg_pool`], the end of the
//! ResNets), one parallel sweep each way.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::flex::{self, flex_tensor, sum, values, zeros};

/// Shape of one pooling: input planes `N C` of `H x W`, windows `k` with
/// stride `s`, output `Ho x Wo` (floor).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pool {
    planes: usize,
    h: usize,
    w: usize,
    k: [usize; 2],
    s: [usize; 2],
    ho: usize,
    wo: usize,
}

impl Pool {
    fn new(dims: &[usize], k: [usize; 2], s: [usize; 2]) -> Option<Self> {
        let [n, c, h, w]: [usize; 4] = dims.try_into().ok()?;
        if k.contains(&0) || s.contains(&0) || h < k[0] || w < k[1] {
            return None;
        }
        let (ho, wo) = ((h - k[0]) / s[0] + 1, (w - k[1]) / s[1] + 1);
        (n * c > 0).then_some(Self {
            planes: n * c,
            h,
            w,
            k,
            s,
            ho,
            wo,
        })
    }
}

/// Maxima `[N, C, Ho, Wo]` and, per output, the winner's offset in its
/// input plane.
fn forward(p: &Pool, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (out_plane, in_plane) = (p.ho * p.wo, p.h * p.w);
    let mut y = zeros(p.planes * out_plane);
    let mut arg = vec![0u32; p.planes * out_plane];
    y.par_chunks_mut(out_plane)
        .zip(arg.par_chunks_mut(out_plane))
        .enumerate()
        .for_each(|(plane, (y, arg))| {
            let x = &x[plane * in_plane..(plane + 1) * in_plane];
            if p.k == [2, 2] && p.s == [2, 2] {
                pool_2x2(p, x, y, arg);
                return;
            }
            for oh in 0..p.ho {
                for ow in 0..p.wo {
                    let (r0, c0) = (oh * p.s[0], ow * p.s[1]);
                    let (mut best, mut at) = (x[r0 * p.w + c0], r0 * p.w + c0);
                    for r in r0..r0 + p.k[0] {
                        for (c, &v) in x[r * p.w + c0..r * p.w + c0 + p.k[1]].iter().enumerate() {
                            // Branch-free (selects): the comparison is a coin
                            // flip on activations, so a branch mispredicts.
                            let gt = v > best;
                            best = if gt { v } else { best };
                            at = if gt { r * p.w + c0 + c } else { at };
                        }
                    }
                    y[oh * p.wo + ow] = best;
                    // An offset in a plane of at most u32::MAX values
                    // (checked by the caller).
                    arg[oh * p.wo + ow] = at as u32;
                }
            }
        });
    (y, arg)
}

/// The common 2 x 2, stride 2 window of one plane, without inner loops:
/// each output's four candidates in order (the first maximum wins).
fn pool_2x2(p: &Pool, x: &[f32], y: &mut [f32], arg: &mut [u32]) {
    for oh in 0..p.ho {
        let (top, bottom) = (
            &x[2 * oh * p.w..][..2 * p.wo],
            &x[(2 * oh + 1) * p.w..][..2 * p.wo],
        );
        let (y, arg) = (&mut y[oh * p.wo..][..p.wo], &mut arg[oh * p.wo..][..p.wo]);
        let base = (2 * oh * p.w) as u32;
        for ow in 0..p.wo {
            let at = base + 2 * ow as u32;
            let (mut best, mut pos) = (top[2 * ow], at);
            for (v, q) in [
                (top[2 * ow + 1], at + 1),
                (bottom[2 * ow], at + p.w as u32),
                (bottom[2 * ow + 1], at + p.w as u32 + 1),
            ] {
                let gt = v > best;
                best = if gt { v } else { best };
                pos = if gt { q } else { pos };
            }
            y[ow] = best;
            arg[ow] = pos;
        }
    }
}

/// Input gradient `[N, C, H, W]`: each output gradient added at its
/// winner's offset.
fn backward(p: &Pool, arg: &[u32], dy: &[f32]) -> Vec<f32> {
    let (out_plane, in_plane) = (p.ho * p.wo, p.h * p.w);
    let mut dx = zeros(p.planes * in_plane);
    dx.par_chunks_mut(in_plane)
        .enumerate()
        .for_each(|(plane, dx)| {
            let range = plane * out_plane..(plane + 1) * out_plane;
            for (&at, &g) in arg[range.clone()].iter().zip(&dy[range]) {
                dx[at as usize] += g;
            }
        });
    dx
}

/// The autodiff node: the pooling and its winners.
#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (Pool, Arc<Vec<u32>>, usize, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (p, arg, n, c) = ops.state;
        if let Some(node) = &ops.parents[0] {
            let (dy, _) = values(&grad).expect("f32 gradient of an f32 pooling");
            grads.register::<Flex>(
                node.id,
                flex_tensor(backward(&p, &arg, &dy), vec![n, c, p.h, p.w]),
            );
        }
    }
}

/// The pooling of a flex tensor, if the kernels take it: (output, winners,
/// shape).
fn flex_forward(
    x: &FlexTensor,
    k: [usize; 2],
    s: [usize; 2],
) -> Option<(FlexTensor, Pool, Vec<u32>, [usize; 2])> {
    let (xv, dims) = values(x)?;
    let p = Pool::new(&dims, k, s)?;
    u32::try_from(p.h * p.w).ok()?;
    let (y, arg) = forward(&p, &xv);
    Some((
        flex_tensor(y, vec![dims[0], dims[1], p.ho, p.wo]),
        p,
        arg,
        [dims[0], dims[1]],
    ))
}

/// Max pooling of `x [N, C, H, W]` with windows `kernel` and `stride`, no
/// padding, no dilation: symfeat's kernels on `Flex` and `Autodiff<Flex>`
/// (f32), burn's `max_pool2d` otherwise.
pub fn max_pool2d<B: Backend>(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
) -> Tensor<B, 4> {
    let fast = flex::unary(&x, PoolBackward, |x| {
        let (y, p, arg, [n, c]) = flex_forward(x, kernel, stride)?;
        Some((y, (p, Arc::new(arg), n, c)))
    });
    if let Some(y) = fast {
        return y;
    }
    burn::tensor::module::max_pool2d(x, kernel, stride, [0, 0], [1, 1], false)
}

/// [`MaxPool2d::forward`] through [`max_pool2d`] when the module has no
/// padding and no dilation (else the module's own forward).
pub fn forward_module<B: Backend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let plain = matches!(
        pool.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    if plain && pool.dilation == [1, 1] && !pool.ceil_mode {
        max_pool2d(x, pool.kernel_size, pool.stride)
    } else {
        pool.forward(x)
    }
}

/// Global average pooling `[N, C, H, W]` -> `[N, C]`: one parallel sweep
/// each way on `Flex` and `Autodiff<Flex>` (f32); two `mean_dim`s
/// otherwise. (burn-autodiff's `mean_dim` backward multiplies a tensor of
/// ones by the broadcast gradient on the calling thread: the largest
/// serial item of a ResNet-20 step after its other kernels.)
pub fn global_avg_pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = x.dims();
    let mean = |v: &[f32]| sum(v) / v.len() as f32;
    let forward = |x: &FlexTensor| -> Option<FlexTensor> {
        let (xv, _) = values(x)?;
        let mut y = vec![0.0f32; n * c];
        y.par_iter_mut()
            .zip(xv.par_chunks(h * w))
            .for_each(|(o, plane)| *o = mean(plane));
        Some(flex_tensor(y, vec![n, c]))
    };
    if h * w > 0
        && let Some(y) = flex::unary(&x, GlobalAvgBackward, |x| Some((forward(x)?, [n, c, h, w])))
    {
        return y;
    }
    x.mean_dim(3).mean_dim(2).reshape([n, c])
}

/// The autodiff node of [`global_avg_pool`]: each input gradient is the
/// output gradient of its plane over `H W`.
#[derive(Debug)]
struct GlobalAvgBackward;

impl Backward<Flex, 1> for GlobalAvgBackward {
    type State = [usize; 4];

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let [n, c, h, w] = ops.state;
        if let Some(node) = &ops.parents[0] {
            let (dy, _) = values(&grad).expect("f32 gradient of an f32 pooling");
            let mut dx = zeros(n * c * h * w);
            let hw = (h * w) as f32;
            dx.par_chunks_mut(h * w)
                .zip(dy.par_iter())
                .for_each(|(plane, &g)| plane.fill(g / hw));
            grads.register::<Flex>(node.id, flex_tensor(dx, vec![n, c, h, w]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_util::vals;
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;

    type Ad = Autodiff<Flex>;

    /// Values and input gradients equal burn's, for windows that tile,
    /// overlap, and leave a remainder; with ties (quantised inputs).
    #[test]
    fn pooling_matches_burn() {
        let dev = Default::default();
        for (shape, k, s) in [
            ([2, 3, 8, 8], [2, 2], [2, 2]),
            ([2, 2, 7, 9], [3, 3], [2, 2]),
            ([1, 4, 5, 6], [2, 3], [1, 2]),
        ] {
            let x = Tensor::<Ad, 4>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
            // Rounded to quarters: many ties inside windows.
            let x = (x * 4.0).round() / 4.0;
            let run = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours {
                    max_pool2d(x.clone(), k, s)
                } else {
                    burn::tensor::module::max_pool2d(x.clone(), k, s, [0, 0], [1, 1], false)
                };
                let n = y.dims().iter().product::<usize>();
                let w: Vec<f32> = (0..n).map(|i| ((i * 31) % 7) as f32 - 3.0).collect();
                let w = Tensor::<Ad, 1>::from_floats(w.as_slice(), &dev).reshape(y.dims());
                let grads = (y.clone() * w).sum().backward();
                (vals(y), vals(x.grad(&grads).unwrap()))
            };
            let (ours, burn) = (run(true), run(false));
            assert_eq!(ours.0, burn.0, "{shape:?} {k:?} {s:?}: values");
            assert_eq!(ours.1, burn.1, "{shape:?} {k:?} {s:?}: gradients");
        }
    }

    /// The CNN pools before its ReLU: relu(max_pool(y)) has the values and
    /// input gradients of max_pool(relu(y)), bit for bit, also with ties
    /// and windows whose maximum is <= 0.
    #[test]
    fn relu_after_pooling_is_relu_before_it() {
        use burn::tensor::activation::relu;
        let dev = Default::default();
        let y = Tensor::<Ad, 4>::random([3, 4, 8, 8], Distribution::Normal(-0.3, 1.0), &dev);
        let y = (y * 2.0).round() / 2.0; // ties, zeros, all-negative windows
        let run = |pool_first: bool| {
            let y = y.clone().require_grad();
            let z = if pool_first {
                relu(max_pool2d(y.clone(), [2, 2], [2, 2]))
            } else {
                max_pool2d(relu(y.clone()), [2, 2], [2, 2])
            };
            let n = z.dims().iter().product::<usize>();
            let w: Vec<f32> = (0..n).map(|i| ((i * 13) % 5) as f32 - 2.0).collect();
            let w = Tensor::<Ad, 1>::from_floats(w.as_slice(), &dev).reshape(z.dims());
            let grads = (z.clone() * w).sum().backward();
            (vals(z), vals(y.grad(&grads).unwrap()))
        };
        assert_eq!(run(true), run(false));
    }

    /// Global average pooling: values and input gradients equal two
    /// `mean_dim`s' (up to rounding), on autodiff and plain flex.
    #[test]
    fn global_average_pooling_matches_mean_dim() {
        let dev = Default::default();
        let x = Tensor::<Ad, 4>::random([3, 5, 7, 6], Distribution::Normal(1.0, 2.0), &dev);
        let run = |ours: bool| {
            let x = x.clone().require_grad();
            let y = if ours {
                global_avg_pool(x.clone())
            } else {
                x.clone().mean_dim(3).mean_dim(2).reshape([3, 5])
            };
            let w: Vec<f32> = (0..15).map(|i| ((i * 31) % 7) as f32 - 3.0).collect();
            let w = Tensor::<Ad, 1>::from_floats(w.as_slice(), &dev).reshape([3, 5]);
            let grads = (y.clone() * w).sum().backward();
            (vals(y), vals(x.grad(&grads).unwrap()))
        };
        let (ours, burn) = (run(true), run(false));
        for (a, b) in ours.0.iter().zip(&burn.0).chain(ours.1.iter().zip(&burn.1)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let plain = Tensor::<Flex, 4>::from_data(x.into_data(), &dev);
        let y = vals(global_avg_pool(plain));
        for (a, b) in y.iter().zip(&burn.0) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn inference_and_fallback() {
        let dev = Default::default();
        let x = Tensor::<Flex, 4>::random([2, 3, 6, 6], Distribution::Normal(0.0, 1.0), &dev);
        let ours = vals(max_pool2d(x.clone(), [2, 2], [2, 2]));
        let burn = vals(burn::tensor::module::max_pool2d(
            x.clone(),
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            false,
        ));
        assert_eq!(ours, burn);
        // A window larger than the input: burn's path (and burn's answer).
        assert!(Pool::new(&[1, 1, 2, 2], [3, 3], [1, 1]).is_none());
        let padded = burn::nn::pool::MaxPool2dConfig::new([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        assert_eq!(
            vals(forward_module(&padded, x.clone())),
            vals(padded.forward(x))
        );
    }
}
