//! The option-A shortcut of CIFAR ResNets (He et al. 2016, section 4.2):
//! `y[n, pad + c, i, j] = x[n, c, s i, s j]`, with `pad` zero channels on
//! each side, as one autodiff operation on the CPU backend. A pruned ResNet
//! routes its kept channels: `y[n, o] = x[n, route[o]]` subsampled, zero
//! where `route[o]` is `usize::MAX` (see [`option_a`]).
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
use std::sync::Arc;

use super::flex::{self, flex_tensor, values, zeros};

/// Shapes of one shortcut: input `[n, c, h, w]`, output
/// `[n, route.len(), h / stride, w / stride]`.
#[derive(Debug, Clone)]
struct Shape {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    stride: usize,
    /// Per output channel, its input channel (`usize::MAX`: zero).
    route: Arc<[usize]>,
    /// Per input channel, the output channel it goes to (`usize::MAX`: none).
    dest: Arc<[usize]>,
}

impl Shape {
    fn new([n, c, h, w]: [usize; 4], stride: usize, route: &[usize]) -> Self {
        let mut dest = vec![usize::MAX; c];
        for (o, &i) in route.iter().enumerate() {
            if let Some(d) = dest.get_mut(i) {
                *d = o;
            }
        }
        Self {
            n,
            c,
            h,
            w,
            stride,
            route: route.into(),
            dest: dest.into(),
        }
    }

    fn out(&self) -> [usize; 4] {
        let s = self.stride;
        [self.n, self.route.len(), self.h / s, self.w / s]
    }

    /// For output plane `plane` (`n co + o`): the input plane it copies,
    /// if it is not a zero channel.
    fn source(&self, plane: usize) -> Option<usize> {
        let co = self.route.len();
        let (n, o) = (plane / co, plane % co);
        let i = self.route[o];
        (i < self.c).then(|| n * self.c + i)
    }
}

/// The route of the full net's shortcut: `pad` zero channels, the `c`
/// input channels, `pad` zero channels.
#[cfg(test)]
pub fn padded_route(c: usize, pad: usize) -> Vec<usize> {
    let mut route = vec![usize::MAX; c + 2 * pad];
    for (i, r) in route[pad..pad + c].iter_mut().enumerate() {
        *r = i;
    }
    route
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
    let c = sh.c;
    dx.par_chunks_mut(sh.h * sh.w)
        .enumerate()
        .for_each(|(plane, out)| {
            let (n, ch) = (plane / c, plane % c);
            let o = sh.dest[ch];
            if o >= co {
                return; // not routed: no gradient
            }
            let g = &dy[(n * co + o) * ho * wo..][..ho * wo];
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
fn flex_forward(x: &FlexTensor, stride: usize, route: &[usize]) -> Option<(FlexTensor, Shape)> {
    let (xv, dims) = values(x)?;
    let dims: [usize; 4] = dims.as_slice().try_into().ok()?;
    let [_, _, h, w] = dims;
    (stride > 0 && h % stride == 0 && w % stride == 0).then_some(())?;
    let sh = Shape::new(dims, stride, route);
    Some((flex_tensor(forward_values(&sh, &xv), sh.out().to_vec()), sh))
}

/// `x[:, :, ::stride, ::stride]` with its channels routed: output channel
/// `o` is input channel `route[o]`, or zeros where that is `usize::MAX`
/// (the full net's route is [`padded_route`]); an empty route keeps the
/// channels. Symfeat's kernels on `Flex` and `Autodiff<Flex>`, burn
/// operations otherwise. `H` and `W` must be multiples of `stride`.
pub fn option_a<B: Backend>(x: Tensor<B, 4>, stride: usize, route: &[usize]) -> Tensor<B, 4> {
    let c = x.dims()[1];
    let identity =
        route.is_empty() || (route.len() == c && route.iter().enumerate().all(|(o, &i)| o == i));
    if stride == 1 && identity {
        return x;
    }
    let full: Vec<usize>;
    let route = if route.is_empty() {
        full = (0..c).collect();
        &full[..]
    } else {
        route
    };
    if let Some(y) = flex::unary(&x, ShortcutBackward, |x| flex_forward(x, stride, route)) {
        return y;
    }
    generic(x, stride, route)
}

/// [`option_a`] in burn operations (any backend).
fn generic<B: Backend>(x: Tensor<B, 4>, stride: usize, route: &[usize]) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let x = if stride > 1 {
        x.reshape([b, c, h / stride, stride, w / stride, stride])
            .narrow(3, 0, 1)
            .narrow(5, 0, 1)
            .reshape([b, c, h / stride, w / stride])
    } else {
        x
    };
    let [b, c, h, w] = x.dims();
    if route.len() == c && route.iter().enumerate().all(|(o, &i)| o == i) {
        return x;
    }
    // Channel `c` of the extended tensor is the zero channel.
    let device = x.device();
    let x = Tensor::cat(vec![x, Tensor::zeros([b, 1, h, w], &device)], 1);
    let idx: Vec<i64> = route.iter().map(|&i| i.min(c) as i64).collect();
    x.select(1, Tensor::<B, 1, Int>::from_ints(idx.as_slice(), &device))
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
            let route = padded_route(shape[1], pad);
            let run = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours {
                    option_a(x.clone(), stride, &route)
                } else {
                    generic(x.clone(), stride, &route)
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
        let route = padded_route(3, 1);
        assert_eq!(
            vals(option_a(x.clone(), 2, &route)),
            vals(generic(x, 2, &route))
        );
    }

    /// A pruned net's route (channels dropped, zero channels, reordered
    /// gaps): values and gradients of the kernel, the burn operations and
    /// the definition agree; a dropped input channel gets no gradient.
    #[test]
    fn a_routed_shortcut_matches_the_definition() {
        let dev = Default::default();
        let (shape, stride) = ([2usize, 5, 4, 6], 2);
        let route = [usize::MAX, 0, 2, usize::MAX, 4, 3];
        let x = Tensor::<Ad, 4>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
        let run = |ours: bool| {
            let x = x.clone().require_grad();
            let y = if ours {
                option_a(x.clone(), stride, &route)
            } else {
                generic(x.clone(), stride, &route)
            };
            let grads = (y.clone() * y.clone()).sum().backward();
            (vals(y), vals(x.grad(&grads).unwrap()))
        };
        let (ours, burn) = (run(true), run(false));
        assert_eq!(ours, burn);
        let xs = vals(x.clone());
        let [n, c, h, w] = shape;
        let (ho, wo) = (h / stride, w / stride);
        for b in 0..n {
            for (o, &i) in route.iter().enumerate() {
                for r in 0..ho {
                    for col in 0..wo {
                        let got = ours.0[((b * route.len() + o) * ho + r) * wo + col];
                        let want = if i < c {
                            xs[((b * c + i) * h + r * stride) * w + col * stride]
                        } else {
                            0.0
                        };
                        assert_eq!(got, want);
                    }
                }
            }
            // Input channel 1 is not routed.
            assert!(
                ours.1[(b * c + 1) * h * w..][..h * w]
                    .iter()
                    .all(|g| *g == 0.0)
            );
        }
    }
}
