//! The option-A shortcut of CIFAR ResNets (He et al. 2016, section 4.2):
//! `y[n, pad + c, i, j] = x[n, c, s i, s j]`, with `pad` zero channels on
//! each side, as one autodiff operation on the CPU backend.
//!
//! Why: in burn operations (a reshape, two `narrow`s and a `cat` with zero
//! tensors) the backward pass wrote slices into full-size zero tensors on
//! the calling thread alone; `burn_flex`'s `slice_write_impl` was the
//! largest single item of the serial part of a ResNet-20 step (`perf`,
//! 2026-11-29). Here each output or input plane is one parallel task.
//! Chosen by `TypeId` like [`super::conv`]; other backends use the burn
//! operations.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::flex::{self, flex_tensor, values, zeros};

/// Shapes of one shortcut: input `[n, c, h, w]`, output
/// `[n, c + 2 pad, h / stride, w / stride]`.
#[derive(Debug, Clone, Copy)]
struct Shape {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    stride: usize,
    pad: usize,
}

impl Shape {
    fn out(&self) -> [usize; 4] {
        let s = self.stride;
        [self.n, self.c + 2 * self.pad, self.h / s, self.w / s]
    }

    /// For output plane `plane` (`n (c + 2 pad) + co`): the input plane it
    /// copies, if it is not a padding channel.
    fn source(&self, plane: usize) -> Option<usize> {
        let co = self.c + 2 * self.pad;
        let (n, ch) = (plane / co, plane % co);
        (self.pad..self.pad + self.c)
            .contains(&ch)
            .then(|| n * self.c + ch - self.pad)
    }
}

fn forward_values(sh: &Shape, x: &[f32]) -> Vec<f32> {
    let [_, co, ho, wo] = sh.out();
    let mut y = zeros(sh.n * co * ho * wo);
    y.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(plane, out)| {
            if let Some(src) = sh.source(plane) {
                let xp = &x[src * sh.h * sh.w..][..sh.h * sh.w];
                for (i, row) in out.chunks_exact_mut(wo).enumerate() {
                    let xr = &xp[i * sh.stride * sh.w..];
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = xr[j * sh.stride];
                    }
                }
            }
        });
    y
}

fn backward_values(sh: &Shape, dy: &[f32]) -> Vec<f32> {
    let [_, co, ho, wo] = sh.out();
    let mut dx = zeros(sh.n * sh.c * sh.h * sh.w);
    let (c, pad) = (sh.c, sh.pad);
    dx.par_chunks_mut(sh.h * sh.w)
        .enumerate()
        .for_each(|(plane, out)| {
            let (n, ch) = (plane / c, plane % c);
            let g = &dy[(n * co + pad + ch) * ho * wo..][..ho * wo];
            for (i, grow) in g.chunks_exact(wo).enumerate() {
                let row = &mut out[i * sh.stride * sh.w..];
                for (j, &v) in grow.iter().enumerate() {
                    row[j * sh.stride] = v;
                }
            }
        });
    dx
}

#[derive(Debug)]
struct ShortcutBackward;

impl Backward<Flex, 1> for ShortcutBackward {
    type State = Shape;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let sh = ops.state;
        if let Some(node) = &ops.parents[0] {
            let (dy, _) = values(&grad).expect("f32 gradient of an f32 shortcut");
            let dx = backward_values(&sh, &dy);
            grads.register::<Flex>(node.id, flex_tensor(dx, vec![sh.n, sh.c, sh.h, sh.w]));
        }
    }
}

/// The shortcut of a flex tensor, if it is f32 `[N, C, H, W]` with `H` and
/// `W` multiples of `stride`.
fn flex_forward(x: &FlexTensor, stride: usize, pad: usize) -> Option<(FlexTensor, Shape)> {
    let (xv, dims) = values(x)?;
    let [n, c, h, w]: [usize; 4] = dims.as_slice().try_into().ok()?;
    let sh = Shape {
        n,
        c,
        h,
        w,
        stride,
        pad,
    };
    (stride > 0 && h % stride == 0 && w % stride == 0).then_some(())?;
    Some((flex_tensor(forward_values(&sh, &xv), sh.out().to_vec()), sh))
}

/// `x[:, :, ::stride, ::stride]` with `pad` zero channels before and after:
/// symfeat's kernels on `Flex` and `Autodiff<Flex>`, burn operations
/// otherwise. `H` and `W` must be multiples of `stride`.
pub fn option_a<B: Backend>(x: Tensor<B, 4>, stride: usize, pad: usize) -> Tensor<B, 4> {
    if stride == 1 && pad == 0 {
        return x;
    }
    if let Some(y) = flex::unary(&x, ShortcutBackward, |x| flex_forward(x, stride, pad)) {
        return y;
    }
    generic(x, stride, pad)
}

/// [`option_a`] in burn operations (any backend).
fn generic<B: Backend>(x: Tensor<B, 4>, stride: usize, pad: usize) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let x = if stride > 1 {
        x.reshape([b, c, h / stride, stride, w / stride, stride])
            .narrow(3, 0, 1)
            .narrow(5, 0, 1)
            .reshape([b, c, h / stride, w / stride])
    } else {
        x
    };
    if pad == 0 {
        return x;
    }
    let [b, _, h, w] = x.dims();
    let zeros = Tensor::zeros([b, pad, h, w], &x.device());
    Tensor::cat(vec![zeros.clone(), x, zeros], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_util::vals;
    use burn::tensor::Distribution;

    type Ad = flex::FlexAd;

    /// Values and input gradients equal the burn operations', and the
    /// values the definition's, for the shapes ResNets use and odd ones.
    #[test]
    fn kernels_match_the_burn_operations_and_the_definition() {
        let dev = Default::default();
        for (shape, stride, pad) in [
            ([2, 3, 8, 6], 2, 2),
            ([3, 4, 4, 4], 2, 0),
            ([2, 2, 6, 9], 3, 1),
            ([1, 2, 5, 5], 1, 3),
        ] {
            let x = Tensor::<Ad, 4>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
            let run = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours {
                    option_a(x.clone(), stride, pad)
                } else {
                    generic(x.clone(), stride, pad)
                };
                let n = y.dims().iter().product::<usize>();
                let w: Vec<f32> = (0..n).map(|i| ((i * 31) % 7) as f32 - 3.0).collect();
                let w = Tensor::<Ad, 1>::from_floats(w.as_slice(), &dev).reshape(y.dims());
                let grads = (y.clone() * w).sum().backward();
                (y.dims(), vals(y), vals(x.grad(&grads).unwrap()))
            };
            let (ours, burn) = (run(true), run(false));
            assert_eq!(ours, burn, "{shape:?} stride {stride} pad {pad}");
            let [n, c, h, w] = shape;
            let xs = vals(x.clone());
            let [_, co, ho, wo] = ours.0;
            for (i, &v) in ours.1.iter().enumerate() {
                let (b, ch, r, col) = (
                    i / (co * ho * wo),
                    (i / (ho * wo)) % co,
                    (i / wo) % ho,
                    i % wo,
                );
                let want = if (pad..pad + c).contains(&ch) {
                    xs[((b * c + ch - pad) * h + r * stride) * w + col * stride]
                } else {
                    0.0
                };
                assert_eq!(v, want, "{shape:?} [{i}]");
            }
            assert_eq!(
                (co, ho, wo, n),
                (c + 2 * pad, h / stride, w / stride, shape[0])
            );
        }
        // Inference (plain flex) too.
        let x = Tensor::<Flex, 4>::random([2, 3, 4, 4], Distribution::Normal(0.0, 1.0), &dev);
        assert_eq!(vals(option_a(x.clone(), 2, 1)), vals(generic(x, 2, 1)));
    }
}
