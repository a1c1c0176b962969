//! What symfeat's CPU kernels ([`super::conv`], [`super::pool`],
//! [`super::batch_norm`], [`super::shortcut`]) share: the glue to burn's
//! `Flex` backend and its autodiff graph (chosen by `TypeId`, so the nets
//! stay generic over the backend), buffers zeroed by the rayon pool, and
//! sums in 16 lanes.

use std::any::{Any, TypeId};

use burn::backend::autodiff::ops::Backward;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;

pub(super) type FlexAd = Autodiff<Flex>;
pub(super) type AdTensor = FloatTensor<FlexAd>;

/// Records `y`, computed from the autodiff tensors `parents`, as the output
/// of the backward step `op`; `state` (an expression that may take
/// checkpoints from `prep`) is built only when the graph tracks the
/// operation. Callers write one arm per parent count: burn-autodiff does
/// not export its node type, so the parent array cannot be built by a
/// generic function.
macro_rules! record {
    ($op:expr, [$($parent:expr),+], |$prep:ident| $state:expr, $y:expr) => {
        match $op
            .prepare::<::burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>(
                [$($parent.node.clone()),+],
            )
            .compute_bound()
            .stateful()
        {
            // (`mut` is unused when the state takes no checkpoint.)
            #[allow(unused_mut)]
            ::burn::backend::autodiff::ops::OpsKind::Tracked(mut $prep) => {
                let state = $state;
                $prep.finish(state, $y)
            }
            ::burn::backend::autodiff::ops::OpsKind::UnTracked(prep) => prep.finish($y),
        }
    };
}
pub(super) use record;

/// A one-input kernel: `forward` gives the output and the backward state
/// from the input's flex tensor (`None` when it does not take it). On
/// `Autodiff<Flex>` the output is recorded with `op`, on `Flex` returned
/// as is; `None` on other backends, where the caller uses burn's
/// operations.
pub(super) fn unary<B: Backend, const D: usize, const E: usize, Op: Backward<Flex, 1>>(
    x: &Tensor<B, D>,
    op: Op,
    forward: impl Fn(&FlexTensor) -> Option<(FlexTensor, Op::State)>,
) -> Option<Tensor<B, E>> {
    let ty = TypeId::of::<B>();
    let y = if ty == TypeId::of::<FlexAd>() {
        let xp: AdTensor = same(primitive(x.clone()));
        let (y, state) = forward(&xp.primitive)?;
        same(record!(op, [xp], |_prep| state, y))
    } else if ty == TypeId::of::<Flex>() {
        let (y, _) = forward(&same(primitive(x.clone())))?;
        same(y)
    } else {
        return None;
    };
    Some(Tensor::from_primitive(TensorPrimitive::Float(y)))
}

/// `t` as `U` when `T` is `U` (checked by the caller through `TypeId`).
pub(super) fn same<T: 'static, U: 'static>(t: T) -> U {
    let boxed: Box<dyn Any> = Box::new(t);
    *boxed.downcast::<U>().expect("TypeId checked by the caller")
}

pub(super) fn primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// Contiguous f32 values of a flex tensor, with its shape.
pub(super) fn values(t: &FlexTensor) -> Option<(std::borrow::Cow<'_, [f32]>, Vec<usize>)> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let dims = t.layout().shape().to_vec();
    Some(match t.as_slice::<f32>() {
        Some(s) => (std::borrow::Cow::Borrowed(s), dims),
        None => (
            std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>()?.to_vec()),
            dims,
        ),
    })
}

pub(super) fn flex_tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `len` zeros, written by the rayon pool (a serial `vec![0.0; len]` of a
/// batch's activations left the other threads idle).
pub(super) fn zeros(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    v.par_extend(rayon::iter::repeat_n(0.0f32, len));
    v
}

/// `f(a_j, b_j)` summed in 16 f32 lanes (vectorises; a plain f32 sum is a
/// serial chain): the lanes, and the sum of the values past the last
/// whole 16, in order.
#[inline(always)]
pub(super) fn lanes(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> ([f32; 16], f32) {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += f(x[l], y[l]);
        }
    }
    (acc, rest)
}

/// Sum of `v` in 16 lanes ([`lanes`]).
pub(super) fn sum(v: &[f32]) -> f32 {
    let (acc, rest) = lanes(v, v, |x, _| x);
    acc.iter().sum::<f32>() + rest
}
