//! symfeat's 2-D convolution for the CPU backend: im2col + GEMM kernels for
//! the forward pass and both backward passes, as one autodiff operation.
//!
//! Why: burn-flex 0.21 computes a convolution's input gradient through
//! `conv_transpose3d` and its weight gradient through strided copies; in a
//! profile of the reference CNN's training step (`perf`, 2 threads) the
//! im2col/col2im closures, the strided iterators and `to_contiguous` took
//! about 40 % of the time. Here each image is unfolded once per pass into a
//! `K x P` matrix (`K = C kh kw`, `P = Ho Wo`) and one product
//! ([`super::sgemm`]) does the work:
//!
//! - forward: `Y_n = W X_n^col + b` (`W` is `O x K`);
//! - input gradient: `dX_n = col2im(W^T dY_n)`;
//! - weight gradient: `dW^T = sum_n X_n^col dY_n^T`, bias `db = sum_n,p dY_n`.
//!
//! For stride 1 and an output as wide as the input (the CNN's and ResNets'
//! "same" convolutions), each unfolded row is one contiguous copy of the
//! input plane, shifted, with the few wrapped positions zeroed
//! ([`Shifted`]). Reading the image in place instead (masked loads, no
//! unfolded matrix) was measured slower and not kept (CNN conv1 forward
//! 3.5 vs 1.0 ms, conv2 14.5 vs 13.7 ms, ResNet 16-channel 4.3 vs 3.9 ms).
//!
//! Images run in parallel on the rayon pool (the weight gradient: groups
//! of [`W_GROUP`] images, summed in a fixed order). [`conv2d`] picks these kernels
//! when the backend is `Flex` or `Autodiff<Flex>` (by `TypeId`, so nets stay
//! generic over the backend), the tensors are f32, and the options have no
//! dilation and one group; everything else goes to burn's `conv2d`.

use std::any::TypeId;

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::flex::{AdTensor, FlexAd, flex_tensor, primitive, record, same, sum, values, zeros};
use super::sgemm::{self, Lhs, Rows};

/// Geometry of one convolution (NCHW, no dilation, one group).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    ho: usize,
    wo: usize,
}

impl Geom {
    /// From input and weight shapes; `None` when the output would be empty.
    fn new(x: [usize; 4], w: [usize; 4], stride: [usize; 2], pad: [usize; 2]) -> Option<Self> {
        let [n, c, h, wd] = x;
        let [o, ci, kh, kw] = w;
        let span = |len: usize, k: usize, p: usize, s: usize| {
            (len + 2 * p).checked_sub(k).map(|v| v / s + 1)
        };
        let ho = span(h, kh, pad[0], stride[0])?;
        let wo = span(wd, kw, pad[1], stride[1])?;
        (ci == c && stride[0] > 0 && stride[1] > 0 && n * o * ho * wo > 0).then_some(Self {
            n,
            c,
            h,
            w: wd,
            o,
            kh,
            kw,
            stride,
            pad,
            ho,
            wo,
        })
    }

    /// Rows of the unfolded image, `C kh kw`.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per image, `Ho Wo`.
    fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Output columns `ow` whose input column `ow s + kx - pad` lies inside
    /// `0..W`, as a range.
    fn valid_cols(&self, kx: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride[1], self.pad[1]);
        // ow s + kx >= p  and  ow s + kx - p < W.
        let lo = p.saturating_sub(kx).div_ceil(s);
        let hi = (self.w + p).saturating_sub(kx).div_ceil(s).min(self.wo);
        lo.min(hi)..hi
    }

    /// Input row of output row `oh` and kernel row `ky`, if inside.
    fn input_row(&self, oh: usize, ky: usize) -> Option<usize> {
        (oh * self.stride[0] + ky)
            .checked_sub(self.pad[0])
            .filter(|&r| r < self.h)
    }
}

/// Copies a short row (a few to a few dozen values) without a call into
/// libc's `memcpy` per row: fixed blocks of 8, then the rest.
#[inline(always)]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let block: [f32; 8] = s.try_into().expect("8 values");
        d.copy_from_slice(&block);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// Row `(c, ky, kx)` of an unfolded image when the stride is 1 and the
/// output is as wide as the input (`2 pad = kw - 1`): output position `q`
/// reads input position `q + shift` of the plane, so the row is one
/// contiguous copy from `dst.start` to `dst.end`, except the gaps between
/// one output row's valid columns and the next's, which read the wrong
/// (wrapped) input and must be 0.
struct Shifted {
    dst: std::ops::Range<usize>,
    src: usize,
    valid: std::ops::Range<usize>,
    wo: usize,
}

impl Shifted {
    /// The wrapped positions inside `dst`.
    fn gaps(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let rows = self.dst.start / self.wo..(self.dst.end - 1) / self.wo;
        rows.map(|oh| oh * self.wo + self.valid.end..(oh + 1) * self.wo + self.valid.start)
    }
}

impl Geom {
    /// [`Shifted`] for kernel position `(ky, kx)`, when it applies and the
    /// row sees some of the image.
    fn shifted(&self, ky: usize, kx: usize) -> Option<Shifted> {
        if self.stride != [1, 1] || self.wo != self.w {
            return None;
        }
        let valid = self.valid_cols(kx);
        let oh0 = self.pad[0].saturating_sub(ky);
        let oh1 = (self.h + self.pad[0]).saturating_sub(ky).min(self.ho);
        if valid.is_empty() || oh0 >= oh1 {
            return None;
        }
        let src = (oh0 + ky - self.pad[0]) * self.w + valid.start + kx - self.pad[1];
        Some(Shifted {
            dst: oh0 * self.wo + valid.start..(oh1 - 1) * self.wo + valid.end,
            src,
            valid,
            wo: self.wo,
        })
    }
}

/// Zeroes a few values (a gap of [`Shifted`]: at most `kw - 1`) without
/// a call into libc's `memset` (which `fill` becomes, and which cost 2 % of
/// a CNN step for one or two values per call).
#[inline(always)]
fn zero_short(v: &mut [f32]) {
    for x in v {
        // SAFETY: `x` is a valid, exclusive reference; the volatile write
        // only keeps the loop from being turned into a `memset` call.
        unsafe { std::ptr::write_volatile(x, 0.0) };
    }
}

/// Unfolds image `x` (`C x H x W`) into `cols` (`K x P`, row `(c, ky, kx)`).
/// Writes only the positions that see the image: the padding positions are
/// the same for every image, so `cols` must hold zeros there (a buffer
/// zeroed once and reused for images of one geometry).
fn im2col(g: &Geom, x: &[f32], cols: &mut [f32]) {
    let p = g.p();
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut cols[((c * g.kh + ky) * g.kw + kx) * p..][..p];
                if let Some(s) = g.shifted(ky, kx) {
                    row[s.dst.clone()].copy_from_slice(&plane[s.src..][..s.dst.len()]);
                    s.gaps().for_each(|gap| zero_short(&mut row[gap]));
                    continue;
                }
                let valid = g.valid_cols(kx);
                if valid.is_empty() {
                    continue;
                }
                let first = valid.start * g.stride[1] + kx - g.pad[1];
                for oh in 0..g.ho {
                    let Some(ih) = g.input_row(oh, ky) else {
                        continue;
                    };
                    let out = &mut row[oh * g.wo..(oh + 1) * g.wo][valid.clone()];
                    let src = &plane[ih * g.w..(ih + 1) * g.w];
                    if g.stride[1] == 1 {
                        copy_row(out, &src[first..first + out.len()]);
                    } else {
                        for (j, v) in out.iter_mut().enumerate() {
                            *v = src[first + j * g.stride[1]];
                        }
                    }
                }
            }
        }
    }
}

/// Adds the unfolded gradient `cols` (`K x P`) back into image `dx`
/// (`C x H x W`, accumulated). Zeroes the gaps of [`Shifted`] rows in
/// `cols` (they hold gradients of padding positions, which have none).
fn col2im(g: &Geom, cols: &mut [f32], dx: &mut [f32]) {
    let p = g.p();
    for c in 0..g.c {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut cols[((c * g.kh + ky) * g.kw + kx) * p..][..p];
                if let Some(s) = g.shifted(ky, kx) {
                    s.gaps().for_each(|gap| zero_short(&mut row[gap]));
                    let dst = &mut plane[s.src..][..s.dst.len()];
                    dst.iter_mut().zip(&row[s.dst]).for_each(|(d, v)| *d += v);
                    continue;
                }
                let valid = g.valid_cols(kx);
                for oh in 0..g.ho {
                    let Some(ih) = g.input_row(oh, ky).filter(|_| !valid.is_empty()) else {
                        continue;
                    };
                    let src = &row[oh * g.wo..(oh + 1) * g.wo][valid.clone()];
                    let dst = &mut plane[ih * g.w..(ih + 1) * g.w];
                    let first = valid.start * g.stride[1] + kx - g.pad[1];
                    if g.stride[1] == 1 {
                        for (d, s) in dst[first..first + src.len()].iter_mut().zip(src) {
                            *d += s;
                        }
                    } else {
                        for (j, s) in src.iter().enumerate() {
                            dst[first + j * g.stride[1]] += s;
                        }
                    }
                }
            }
        }
    }
}

/// Runs `f(image index, im2col buffer)` for every image in parallel, with
/// one `K x P` buffer per rayon job.
fn per_image(
    g: &Geom,
    out: &mut [f32],
    out_len: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    let cols = g.k() * g.p();
    out.par_chunks_mut(out_len)
        .enumerate()
        .for_each_init(|| vec![0.0f32; cols], |buf, (i, o)| f(i, buf, o));
}

/// Forward: `[N, O, Ho, Wo]`.
fn forward_values(g: &Geom, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    let wa = Lhs {
        data: w,
        m: g.o,
        k,
        strides: (k, 1),
    };
    let mut y = zeros(g.n * g.o * p);
    per_image(g, &mut y, g.o * p, |i, cols, yi| {
        im2col(g, &x[i * g.c * g.h * g.w..][..g.c * g.h * g.w], cols);
        if let Some(b) = b {
            for (row, &bias) in yi.chunks_exact_mut(p).zip(b) {
                row.fill(bias);
            }
        }
        let cols = Rows {
            data: cols,
            ld: p,
            n: p,
        };
        sgemm::gemm(yi, p, b.is_some(), wa, cols);
    });
    y
}

/// Input gradient: `[N, C, H, W]`.
fn backward_x(g: &Geom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    // W^T: K x O, value (s, o) at o K + s.
    let wt = Lhs {
        data: w,
        m: k,
        k: g.o,
        strides: (1, k),
    };
    let mut dx = zeros(g.n * g.c * g.h * g.w);
    per_image(g, &mut dx, g.c * g.h * g.w, |i, cols, dxi| {
        // cols = W^T dY_n.
        let dyi = Rows {
            data: &dy[i * g.o * p..][..g.o * p],
            ld: p,
            n: p,
        };
        sgemm::gemm(cols, p, false, wt, dyi);
        col2im(g, cols, dxi);
    });
    dx
}

/// Images per group of the weight gradient: each group sums its images in
/// order, then the groups are summed in order, so the result does not
/// depend on how rayon schedules them (a resumed run must repeat an
/// uninterrupted one bit for bit).
const W_GROUP: usize = 8;

/// Weight and bias gradients: `[O, C, kh, kw]` and `[O]`.
///
/// Computed transposed, `dW^T = sum_n X_n^col dY_n^T` (`K x O`): the
/// unfolded image is the `A` of the product, read in place, and `dY_n^T`
/// (`P x O`, small) its `B`; `dW` is transposed once at the end.
fn backward_w(g: &Geom, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (k, p) = (g.k(), g.p());
    let image = g.c * g.h * g.w;
    let groups: Vec<(Vec<f32>, Vec<f32>)> = (0..g.n.div_ceil(W_GROUP))
        .into_par_iter()
        .map(|group| {
            let (mut dwt, mut db) = (vec![0.0f32; k * g.o], vec![0.0f32; g.o]);
            let images = group * W_GROUP..((group + 1) * W_GROUP).min(g.n);
            let mut cols = vec![0.0f32; k * p];
            let mut dyt = vec![0.0f32; p * g.o];
            for i in images {
                im2col(g, &x[i * image..][..image], &mut cols);
                let dyi = &dy[i * g.o * p..][..g.o * p];
                for (oo, row) in dyi.chunks_exact(p).enumerate() {
                    for (pp, &v) in row.iter().enumerate() {
                        dyt[pp * g.o + oo] = v;
                    }
                    db[oo] += sum(row);
                }
                let a = Lhs {
                    data: &cols,
                    m: k,
                    k: p,
                    strides: (p, 1),
                };
                let b = Rows {
                    data: &dyt,
                    ld: g.o,
                    n: g.o,
                };
                sgemm::gemm(&mut dwt, g.o, true, a, b);
            }
            (dwt, db)
        })
        .collect();
    let mut parts = groups.into_iter();
    let (mut dwt, mut db) = parts.next().unwrap_or_default();
    for (gw, gb) in parts {
        dwt.iter_mut().zip(&gw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
    }
    let mut dw = vec![0.0f32; g.o * k];
    for (s, row) in dwt.chunks_exact(g.o).enumerate() {
        for (oo, &v) in row.iter().enumerate() {
            dw[oo * k + s] = v;
        }
    }
    (dw, db)
}

// ---------------------------------------------------------------- burn glue

fn dims4(d: &[usize]) -> Option<[usize; 4]> {
    d.try_into().ok()
}

/// The kernels' geometry for flex tensors `x`, `w` and `options`, if they
/// apply (f32, 4-D, no dilation, one group, bias of length O).
fn geom(x: &FlexTensor, w: &FlexTensor, options: &ConvOptions<2>) -> Option<Geom> {
    if options.dilation != [1, 1] || options.groups != 1 || w.dtype() != DType::F32 {
        return None;
    }
    let xd = dims4(x.layout().shape())?;
    let wd = dims4(w.layout().shape())?;
    Geom::new(xd, wd, options.stride, options.padding)
}

/// Forward on flex tensors.
fn flex_forward(
    g: &Geom,
    x: &FlexTensor,
    w: &FlexTensor,
    b: Option<&FlexTensor>,
) -> Option<FlexTensor> {
    let (xv, _) = values(x)?;
    let (wv, _) = values(w)?;
    let bv = match b {
        Some(b) => Some(values(b)?.0),
        None => None,
    };
    if bv.as_ref().is_some_and(|b| b.len() != g.o) {
        return None;
    }
    let y = forward_values(g, &xv, &wv, bv.as_deref());
    Some(flex_tensor(y, vec![g.n, g.o, g.ho, g.wo]))
}

/// The autodiff node: parents `x`, `w` and optionally `b`.
#[derive(Debug)]
struct ConvBackward;

impl<const N: usize> Backward<Flex, N> for ConvBackward {
    type State = (NodeId, NodeId, Geom);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x_id, w_id, g) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_id);
        let w: FlexTensor = checkpointer.retrieve_node_output(w_id);
        let (dy, _) = values(&grad).expect("f32 gradient of an f32 convolution");
        let parents = ops.parents;
        if let Some(node) = &parents[0] {
            let (wv, _) = values(&w).expect("f32 weight");
            grads.register::<Flex>(
                node.id,
                flex_tensor(backward_x(&g, &wv, &dy), vec![g.n, g.c, g.h, g.w]),
            );
        }
        let bias_node = parents.get(2).and_then(Option::as_ref);
        let wants_w = parents[1].is_some();
        let wants_b = bias_node.is_some();
        if wants_w || wants_b {
            let (xv, _) = values(&x).expect("f32 input");
            let (dw, db) = backward_w(&g, &xv, &dy);
            if let Some(node) = &parents[1] {
                grads.register::<Flex>(node.id, flex_tensor(dw, vec![g.o, g.c, g.kh, g.kw]));
            }
            if let Some(node) = bias_node {
                grads.register::<Flex>(node.id, flex_tensor(db, vec![g.o]));
            }
        }
    }
}

/// Records the convolution `y = conv(x, w, b)` (computed by the kernels
/// with geometry `g`) in the autodiff graph.
fn tracked(x: AdTensor, w: AdTensor, b: Option<AdTensor>, g: Geom, y: FlexTensor) -> AdTensor {
    match &b {
        Some(b) => record!(
            ConvBackward,
            [x, w, b],
            |prep| (prep.checkpoint(&x), prep.checkpoint(&w), g),
            y
        ),
        None => record!(
            ConvBackward,
            [x, w],
            |prep| (prep.checkpoint(&x), prep.checkpoint(&w), g),
            y
        ),
    }
}

/// 2-D convolution `x [N, C, H, W]` with `weight [O, C, kh, kw]` and
/// `bias [O]`: symfeat's kernels on `Flex` and `Autodiff<Flex>` when they
/// apply (module documentation), burn's `conv2d` otherwise.
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    let ty = TypeId::of::<B>();
    if ty == TypeId::of::<FlexAd>() {
        let (xp, wp): (AdTensor, AdTensor) =
            (same(primitive(x.clone())), same(primitive(weight.clone())));
        let bp: Option<AdTensor> = bias.clone().map(|b| same(primitive(b)));
        let y = geom(&xp.primitive, &wp.primitive, &options).and_then(|g| {
            let bias = bp.as_ref().map(|b| &b.primitive);
            Some((g, flex_forward(&g, &xp.primitive, &wp.primitive, bias)?))
        });
        if let Some((g, y)) = y {
            let y = tracked(xp, wp, bp, g, y);
            return Tensor::from_primitive(TensorPrimitive::Float(same(y)));
        }
    }
    if ty == TypeId::of::<Flex>() {
        let (xp, wp): (FlexTensor, FlexTensor) =
            (same(primitive(x.clone())), same(primitive(weight.clone())));
        let bp: Option<FlexTensor> = bias.clone().map(|b| same(primitive(b)));
        if let Some(y) =
            geom(&xp, &wp, &options).and_then(|g| flex_forward(&g, &xp, &wp, bp.as_ref()))
        {
            return Tensor::from_primitive(TensorPrimitive::Float(same(y)));
        }
    }
    burn::tensor::module::conv2d(x, weight, bias, options)
}

/// [`Conv2d::forward`] through [`conv2d`] (symmetric or no padding; other
/// padding uses the module's own forward).
pub fn forward<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    match symmetric_padding(conv) {
        Some(padding) => conv2d(
            x,
            conv.weight.val(),
            conv.bias.as_ref().map(|b| b.val()),
            ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups),
        ),
        None => conv.forward(x),
    }
}

/// [`forward`] with `weight` in place of the layer's own (a transformed
/// weight of the same shape). Layers with asymmetric padding go through
/// burn's padding and `conv2d`.
pub fn forward_weight<B: Backend>(
    conv: &Conv2d<B>,
    weight: Tensor<B, 4>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let bias = conv.bias.as_ref().map(|b| b.val());
    let options = |padding| ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    match symmetric_padding(conv) {
        Some(padding) => conv2d(x, weight, bias, options(padding)),
        None => {
            let [_, _, h, w] = x.dims();
            let [_, _, kh, kw] = weight.dims();
            let ((top, bottom), (left, right)) = match conv.padding {
                PaddingConfig2d::Explicit(top, left, bottom, right) => {
                    ((top, bottom), (left, right))
                }
                // `Same`: what keeps ceil(size / stride) outputs, the extra
                // row or column at the end; like burn 0.21's own padding
                // for `Same`, without the dilation (so both paths agree).
                _ => {
                    let same = |n: usize, k: usize, s: usize| {
                        let out = n.div_ceil(s.max(1));
                        let total = ((out.max(1) - 1) * s + k).saturating_sub(n);
                        (total / 2, total - total / 2)
                    };
                    (same(h, kh, conv.stride[0]), same(w, kw, conv.stride[1]))
                }
            };
            let x = x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0));
            conv2d(x, weight, bias, options([0, 0]))
        }
    }
}

/// `[top, left]` of a layer padded the same on both sides, else `None`.
fn symmetric_padding<B: Backend>(conv: &Conv2d<B>) -> Option<[usize; 2]> {
    match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_util::vals;
    use burn::tensor::Distribution;

    type Ad = FlexAd;

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * scale,
                "{what}[{i}]: {x} vs burn {y}"
            );
        }
    }

    /// symfeat's kernels against burn's conv2d: output and the gradients of
    /// `sum(y * r)` for x, weight and bias.
    fn check(
        x: [usize; 4],
        o: usize,
        k: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
        bias: bool,
    ) {
        let dev = Default::default();
        let what = format!("x {x:?} o {o} k {k:?} stride {stride:?} pad {pad:?} bias {bias}");
        let xt = Tensor::<Ad, 4>::random(x, Distribution::Normal(0.0, 1.0), &dev);
        let wt =
            Tensor::<Ad, 4>::random([o, x[1], k[0], k[1]], Distribution::Normal(0.0, 1.0), &dev);
        let bt = Tensor::<Ad, 1>::random([o], Distribution::Normal(0.0, 1.0), &dev);
        let options = ConvOptions::new(stride, pad, [1, 1], 1);
        let run = |ours: bool| {
            let (x, w, b) = (
                xt.clone().require_grad(),
                wt.clone().require_grad(),
                bt.clone().require_grad(),
            );
            let bias_arg = bias.then(|| b.clone());
            let y = if ours {
                conv2d(x.clone(), w.clone(), bias_arg, options.clone())
            } else {
                burn::tensor::module::conv2d(x.clone(), w.clone(), bias_arg, options.clone())
            };
            let r = Tensor::<Ad, 4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &dev);
            let _ = r;
            // A fixed weighting of the outputs (not random: both runs use it).
            let n = y.dims().iter().product::<usize>();
            let weights: Vec<f32> = (0..n).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            let r = Tensor::<Ad, 1>::from_floats(weights.as_slice(), &dev).reshape(y.dims());
            let grads = (y.clone() * r).sum().backward();
            (
                vals(y),
                vals(x.grad(&grads).unwrap()),
                vals(w.grad(&grads).unwrap()),
                bias.then(|| vals(b.grad(&grads).unwrap())),
            )
        };
        let (ours, burn) = (run(true), run(false));
        close(&ours.0, &burn.0, &format!("{what}: y"));
        close(&ours.1, &burn.1, &format!("{what}: dx"));
        close(&ours.2, &burn.2, &format!("{what}: dw"));
        if bias {
            close(
                ours.3.as_ref().unwrap(),
                burn.3.as_ref().unwrap(),
                &format!("{what}: db"),
            );
        }
    }

    #[test]
    fn kernels_match_burn_forward_and_gradients() {
        check([3, 2, 9, 7], 4, [3, 3], [1, 1], [1, 1], true);
        check([2, 1, 12, 10], 5, [5, 5], [1, 1], [2, 2], true);
        check([2, 3, 11, 9], 4, [3, 3], [2, 2], [1, 1], true);
        check([2, 3, 8, 8], 2, [1, 1], [2, 2], [0, 0], false);
        check([1, 2, 6, 9], 3, [3, 2], [1, 2], [0, 1], false);
        // More output channels than one 48-column tile of the weight
        // gradient's product (dW^T is K x O).
        check([2, 3, 7, 6], 33, [3, 3], [1, 1], [1, 1], true);
        check([2, 2, 9, 9], 40, [3, 3], [2, 2], [1, 1], false);
        // A kernel wider than the padded row on one side: empty column ranges.
        check([2, 2, 3, 3], 2, [3, 3], [1, 1], [2, 2], true);
    }

    #[test]
    fn the_kernels_are_used_on_flex_and_inference_matches() {
        let dev = Default::default();
        let x = Tensor::<Flex, 4>::random([2, 3, 10, 10], Distribution::Normal(0.0, 1.0), &dev);
        let w = Tensor::<Flex, 4>::random([4, 3, 3, 3], Distribution::Normal(0.0, 1.0), &dev);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let ours = vals(conv2d(x.clone(), w.clone(), None, options.clone()));
        let burn = vals(burn::tensor::module::conv2d(x, w, None, options));
        close(&ours, &burn, "flex inference");
        // The geometry the kernels accept.
        assert!(Geom::new([1, 3, 4, 4], [2, 3, 5, 5], [1, 1], [0, 0]).is_none());
        assert!(Geom::new([1, 3, 4, 4], [2, 2, 3, 3], [1, 1], [0, 0]).is_none());
        let g = Geom::new([1, 3, 32, 32], [2, 3, 3, 3], [2, 2], [1, 1]).unwrap();
        assert_eq!((g.ho, g.wo), (16, 16));
        assert_eq!(g.valid_cols(0), 1..16);
        assert_eq!(g.valid_cols(2), 0..16);
    }

    /// The gradients do not depend on the thread count or on scheduling
    /// (a resumed run must repeat an uninterrupted one bit for bit).
    #[test]
    fn gradients_are_bitwise_reproducible_across_thread_counts() {
        let g = Geom::new([37, 3, 10, 9], [5, 3, 3, 3], [1, 1], [1, 1]).unwrap();
        let x: Vec<f32> = (0..37 * 3 * 90)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let dy: Vec<f32> = (0..37 * 5 * g.p())
            .map(|i| ((i * 104729) % 97) as f32 / 48.0 - 1.0)
            .collect();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| backward_w(&g, &x, &dy))
        };
        let one = on(1);
        for threads in [2, 3, 5] {
            assert!(on(threads) == one, "{threads} threads");
        }
    }

    /// im2col against its definition, and col2im as its adjoint
    /// (`<im2col(x), C> = <x, col2im(C)>`), on geometries with and without
    /// the contiguous ([`Shifted`]) rows.
    #[test]
    fn unfolding_matches_its_definition_and_col2im_is_its_adjoint() {
        for (x, w, stride, pad) in [
            ([1, 2, 7, 5], [1, 2, 3, 3], [1, 1], [1, 1]),
            ([1, 3, 6, 9], [1, 3, 5, 5], [1, 1], [2, 2]),
            ([1, 2, 5, 6], [1, 2, 3, 5], [1, 1], [1, 2]),
            ([1, 2, 4, 4], [1, 2, 5, 5], [1, 1], [2, 2]),
            ([1, 2, 9, 8], [1, 2, 3, 3], [2, 2], [1, 1]),
            ([1, 1, 6, 7], [1, 1, 3, 3], [1, 1], [0, 0]),
            // Contiguous rows with an output taller than the input (Ho 7).
            ([1, 2, 5, 5], [1, 2, 1, 3], [1, 1], [1, 1]),
        ] {
            let g = Geom::new(x, w, stride, pad).unwrap();
            let (k, p) = (g.k(), g.p());
            let image: Vec<f32> = (0..g.c * g.h * g.w).map(|i| i as f32 + 1.0).collect();
            let mut cols = vec![0.0f32; k * p];
            im2col(&g, &image, &mut cols);
            for c in 0..g.c {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        for oh in 0..g.ho {
                            for ow in 0..g.wo {
                                let ih = (oh * stride[0] + ky) as isize - pad[0] as isize;
                                let iw = (ow * stride[1] + kx) as isize - pad[1] as isize;
                                let inside = (0..g.h as isize).contains(&ih)
                                    && (0..g.w as isize).contains(&iw);
                                let want = if inside {
                                    image[(c * g.h + ih as usize) * g.w + iw as usize]
                                } else {
                                    0.0
                                };
                                let row = (c * g.kh + ky) * g.kw + kx;
                                assert_eq!(cols[row * p + oh * g.wo + ow], want, "{g:?}");
                            }
                        }
                    }
                }
            }
            let grad: Vec<f32> = (0..k * p).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let mut dx = vec![0.0f32; image.len()];
            col2im(&g, &mut grad.clone(), &mut dx);
            let lhs: f64 = cols.iter().zip(&grad).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = image.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
            assert_eq!(lhs, rhs, "{g:?}");
        }
    }

    /// Options the kernels do not take (dilation, groups) go to burn.
    #[test]
    fn other_options_fall_back_to_burn() {
        let dev = Default::default();
        let x = Tensor::<Ad, 4>::random([1, 4, 9, 9], Distribution::Normal(0.0, 1.0), &dev);
        let w = Tensor::<Ad, 4>::random([4, 2, 3, 3], Distribution::Normal(0.0, 1.0), &dev);
        let options = ConvOptions::new([1, 1], [1, 1], [2, 2], 2);
        let ours = vals(conv2d(x.clone(), w.clone(), None, options.clone()));
        let burn = vals(burn::tensor::module::conv2d(x, w, None, options));
        assert_eq!(ours, burn);
    }
}
