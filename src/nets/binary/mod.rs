//! Binary backbones (1-bit weights and activations; ReCU, Xu et al., ICCV
//! 2021; field notes §8.2): the reference CNN, the MLP and the CIFAR
//! ResNets, with every layer but the first and the head binary.
//!
//! Binary networks need signed inputs to each sign (a post-ReLU input
//! would binarise to all +1), so their architecture differs from the float
//! one: BatchNorm and hardtanh before each binary layer, and for ResNets
//! the authors' Bi-Real-style block with a shortcut around each conv.
//!
//! A [`BinaryConv`] / [`BinaryLinear`] computes `conv(sign(a), sign(w)) *
//! alpha` (alpha a learned scale per output channel, initialised U(0, 1),
//! no bias: a BatchNorm follows) through the seam
//! [`super::WeightTransform::binary_conv`]: by default the float
//! simulation of [`recu`] (training and evaluation), replaced by the
//! bit-packed XNOR/popcount kernel for inference (`crate::binary::packed`).
//! The binarisation is part of the layer, not of a transform chosen by the
//! caller, so every consumer of a binary model (probe, exports, quantize,
//! bench) computes what was trained.

mod cnn;
mod mlp;
pub mod recu;
mod resnet;

pub use cnn::BinaryCnn;
pub use mlp::BinaryMlp;
pub use resnet::BinaryResNet;

use super::layers::{LayerRef, WeightTransform};
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

/// Binary training (`binary` in config.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binarize {
    /// Float weights and activations (default).
    #[default]
    None,
    /// sign + straight-through estimators, no clamp (the baseline).
    Sign,
    /// ReCU: standardisation, the clamp at Q(tau) with tau's exponential
    /// schedule, sign + straight-through estimators.
    Recu,
    /// The control: the binary architecture (BatchNorm + hardtanh,
    /// Bi-Real blocks, alpha) with float layers, no sign; it separates
    /// what binarising does from what the architecture change does.
    FloatArch,
}

impl Binarize {
    /// All names, for help texts and errors.
    pub const NAMES: &'static str = "none, sign, recu, float-arch";

    /// Parse a CLI name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "sign" => Self::Sign,
            "recu" => Self::Recu,
            "float-arch" => Self::FloatArch,
            _ => return None,
        })
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Sign => "sign",
            Self::Recu => "recu",
            Self::FloatArch => "float-arch",
        }
    }

    /// Whether the layers binarise (`sign`, `recu`).
    pub fn binarizes(self) -> bool {
        matches!(self, Self::Sign | Self::Recu)
    }
}

/// hardtanh: `clamp(x, -1, 1)`.
pub(crate) fn hardtanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clamp(-1.0, 1.0)
}

/// alpha: a learned scale per output channel, U(0, 1) as the authors'.
fn alpha<B: Backend>(channels: usize, device: &B::Device) -> Param<Tensor<B, 1>> {
    Param::from_tensor(Tensor::random(
        [channels],
        Distribution::Uniform(0.0, 1.0),
        device,
    ))
}

/// A binary convolution: `conv(sign(a), sign(w)) * alpha`.
#[derive(Module, Debug)]
pub struct BinaryConv<B: Backend> {
    /// The latent float weights `[O, C, kh, kw]` (no bias), stride, padding.
    pub conv: Conv2d<B>,
    /// Per output channel.
    pub alpha: Param<Tensor<B, 1>>,
    /// ReCU's clamp (off: plain sign).
    pub clamp: bool,
    /// Binarise (off: the `float-arch` control, a float layer).
    pub binarize: bool,
    /// ReCU's tau for this epoch (set by the trainer, not stored).
    pub tau: f64,
}

impl<B: Backend> BinaryConv<B> {
    /// `cin -> cout`, `k x k`, `stride`, symmetric `pad`; Kaiming-normal
    /// latent weights; `mode`: sign, recu or the float control.
    pub fn new(
        [cin, cout]: [usize; 2],
        k: usize,
        stride: usize,
        pad: usize,
        mode: Binarize,
        device: &B::Device,
    ) -> Self {
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .with_initializer(Initializer::KaimingNormal {
                gain: std::f64::consts::SQRT_2,
                fan_out_only: false,
            })
            .init(device);
        Self {
            conv,
            alpha: alpha(cout, device),
            clamp: mode == Binarize::Recu,
            binarize: mode.binarizes(),
            tau: 0.85,
        }
    }

    /// The layer through the seam `t` (by default [`Self::simulate`]).
    pub fn forward(&self, x: Tensor<B, 4>, t: &dyn WeightTransform<B>, name: &str) -> Tensor<B, 4> {
        t.binary_conv(&LayerRef { name, first: false }, self, x)
    }

    /// The binary weights `[O, C, kh, kw]` (exactly +-1; straight-through
    /// gradients, see [`recu::binary_weights`]).
    pub fn binary_weight(&self) -> Tensor<B, 4> {
        let w = self.conv.weight.val();
        let shape = w.dims();
        let [o, c, kh, kw] = shape;
        let wb = recu::binary_weights(w.reshape([o, c * kh * kw]), self.clamp.then_some(self.tau));
        wb.reshape(shape)
    }

    /// The float simulation: `conv(sign(a), sign(w)) * alpha`; exact
    /// integer sums before the scale (f32 holds them exactly).
    pub fn simulate(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if !self.binarize {
            return self.float_forward(x);
        }
        let shape = x.dims();
        let [n, c, h, w] = shape;
        let a = recu::binary_activations(x.reshape([n, c * h * w])).reshape(shape);
        let y = crate::kernels::conv::forward_weight(&self.conv, self.binary_weight(), a);
        self.scale(y)
    }

    /// The layer in float: `conv(a, w) * alpha` on the latent weights.
    pub fn float_forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.scale(crate::kernels::conv::forward(&self.conv, x))
    }

    /// `y * alpha` per output channel.
    pub fn scale(&self, y: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, o, _, _] = y.dims();
        // `[N, O, 1, 1]`, contiguous: burn-flex's per-row-scalar path (a
        // `[1, O, 1, 1]` broadcast runs through its strided iterator).
        y * self.alpha.val().reshape([1, o, 1, 1]).repeat_dim(0, n)
    }

    /// The latent weights as `[O, K]` rows (K in burn's `(c, ky, kx)` order).
    pub fn weight_rows(&self) -> Tensor<B, 2> {
        let [o, c, kh, kw] = self.conv.weight.dims();
        self.conv.weight.val().reshape([o, c * kh * kw])
    }
}

/// A binary fully connected layer: `sign(a) sign(w) * alpha`.
#[derive(Module, Debug)]
pub struct BinaryLinear<B: Backend> {
    /// The latent float weights `[in, out]` (no bias).
    pub fc: Linear<B>,
    /// Per output.
    pub alpha: Param<Tensor<B, 1>>,
    /// ReCU's clamp (off: plain sign).
    pub clamp: bool,
    /// Binarise (off: the `float-arch` control, a float layer).
    pub binarize: bool,
    /// ReCU's tau for this epoch (set by the trainer, not stored).
    pub tau: f64,
}

impl<B: Backend> BinaryLinear<B> {
    /// `inp -> out`, PyTorch-default latent weights; `mode` as
    /// [`BinaryConv::new`].
    pub fn new(inp: usize, out: usize, mode: Binarize, device: &B::Device) -> Self {
        Self {
            fc: LinearConfig::new(inp, out).with_bias(false).init(device),
            alpha: alpha(out, device),
            clamp: mode == Binarize::Recu,
            binarize: mode.binarizes(),
            tau: 0.85,
        }
    }

    /// The layer through the seam `t` (by default [`Self::simulate`]).
    pub fn forward(&self, x: Tensor<B, 2>, t: &dyn WeightTransform<B>, name: &str) -> Tensor<B, 2> {
        t.binary_linear(&LayerRef { name, first: false }, self, x)
    }

    /// The float simulation: `sign(a) sign(w) * alpha`.
    pub fn simulate(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        if !self.binarize {
            return self.float_forward(x);
        }
        let a = recu::binary_activations(x);
        // Standardised per output: rows of [out, in].
        let wb = recu::binary_weights(self.weight_rows(), self.clamp.then_some(self.tau));
        self.scale(a.matmul(wb.transpose()))
    }

    /// The layer in float: `a w * alpha` on the latent weights.
    pub fn float_forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.scale(self.fc.forward(x))
    }

    /// `y * alpha` per output.
    pub fn scale(&self, y: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, o] = y.dims();
        y * self.alpha.val().reshape([1, o]).repeat_dim(0, n)
    }

    /// The latent weights as `[out, in]` rows.
    pub fn weight_rows(&self) -> Tensor<B, 2> {
        self.fc.weight.val().transpose()
    }
}

/// A binary layer of a backbone, for diagnostics and packing.
pub enum BinaryLayer<'a, B: Backend> {
    /// A convolution.
    Conv(&'a BinaryConv<B>),
    /// A fully connected layer.
    Linear(&'a BinaryLinear<B>),
}

impl<B: Backend> BinaryLayer<'_, B> {
    /// The latent weights as `[O, K]` rows.
    pub fn weight_rows(&self) -> Tensor<B, 2> {
        match self {
            Self::Conv(c) => c.weight_rows(),
            Self::Linear(l) => l.weight_rows(),
        }
    }

    /// alpha, per output channel.
    pub fn alpha(&self) -> Tensor<B, 1> {
        match self {
            Self::Conv(c) => c.alpha.val(),
            Self::Linear(l) => l.alpha.val(),
        }
    }
}

/// Set tau on every binary layer (`layers` of a backbone, mutable).
pub(crate) trait SetTau {
    fn set_tau(&mut self, tau: f64);
}

impl<B: Backend> SetTau for BinaryConv<B> {
    fn set_tau(&mut self, tau: f64) {
        self.tau = tau;
    }
}

impl<B: Backend> SetTau for BinaryLinear<B> {
    fn set_tau(&mut self, tau: f64) {
        self.tau = tau;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuTrain};
    use crate::kernels::test_util::vals;
    use crate::nets::{FeatureAct, Identity, NetKind, NetSpec};
    use burn::module::AutodiffModule;

    /// `sign(standardised, clamped w)` per output channel in f64: the
    /// clamp never flips a sign, so these are the signs of `w - mean`.
    fn signs64(w: &[f32], k: usize) -> Vec<f64> {
        w.chunks(k)
            .flat_map(|row| {
                let m = row.iter().map(|&x| x as f64).sum::<f64>() / k as f64;
                row.iter()
                    .map(move |&x| if x as f64 - m >= 0.0 { 1.0 } else { -1.0 })
            })
            .collect()
    }

    fn s64(x: f32) -> f64 {
        if x >= 0.0 { 1.0 } else { -1.0 }
    }

    /// A binary convolution's output against an independent f64
    /// computation of conv(sign(a), sign(w)) * alpha (padding 1, stride 2,
    /// odd sizes), in training (autodiff) and evaluation.
    #[test]
    fn binary_conv_is_sign_conv_times_alpha() {
        let dev = Default::default();
        let (c, o, h, w, n) = (3, 5, 7, 6, 2);
        let layer = BinaryConv::<CpuTrain>::new([c, o], 3, 2, 1, Binarize::Recu, &dev);
        let x = Tensor::<CpuTrain, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &dev);
        let xs = vals(x.clone());
        let wv = vals(layer.conv.weight.val());
        let ws = signs64(&wv, c * 9);
        let alpha = vals(layer.alpha.val());
        let (ho, wo) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
        let mut want = vec![0f64; n * o * ho * wo];
        for ni in 0..n {
            for oi in 0..o {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = 0.0;
                        for ci in 0..c {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) =
                                        ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let a = xs[((ni * c + ci) * h + iy as usize) * w + ix as usize];
                                    acc += s64(a) * ws[((oi * c + ci) * 3 + ky) * 3 + kx];
                                }
                            }
                        }
                        want[((ni * o + oi) * ho + oy) * wo + ox] = acc * alpha[oi] as f64;
                    }
                }
            }
        }
        let train = vals(layer.simulate(x.clone()));
        let eval = vals(layer.valid().simulate(x.inner()));
        for (i, &v) in want.iter().enumerate() {
            assert!(
                (train[i] as f64 - v).abs() < 1e-5,
                "{i}: {} vs {v}",
                train[i]
            );
            assert_eq!(
                train[i], eval[i],
                "{i}: training and evaluation forward differ"
            );
        }
    }

    /// The same for a binary fully connected layer.
    #[test]
    fn binary_linear_is_sign_product_times_alpha() {
        let dev = Default::default();
        let (k, o, n) = (13, 4, 3);
        let layer = BinaryLinear::<Cpu>::new(k, o, Binarize::Sign, &dev);
        let x = Tensor::<Cpu, 2>::random([n, k], Distribution::Normal(0.0, 1.0), &dev);
        let xs = vals(x.clone());
        let rows = vals(layer.weight_rows());
        let ws = signs64(&rows, k);
        let alpha = vals(layer.alpha.val());
        let got = vals(layer.simulate(x));
        for ni in 0..n {
            for oi in 0..o {
                let dot: f64 = (0..k).map(|j| s64(xs[ni * k + j]) * ws[oi * k + j]).sum();
                let want = dot * alpha[oi] as f64;
                assert!((got[ni * o + oi] as f64 - want).abs() < 1e-5);
            }
        }
    }

    /// Every binary backbone: `[B, D]` features, gradient at the (float)
    /// first layer, at alpha and at the latent weights; lenet refused.
    #[test]
    fn binary_backbones_train_end_to_end() {
        let dev = Default::default();
        for (kind, ch, hw, layers) in [
            (NetKind::Mlp, 1, 8, 1),
            (NetKind::Cnn, 1, 8, 2),
            (NetKind::Resnet20, 3, 8, 18),
        ] {
            for binary in [Binarize::Sign, Binarize::Recu, Binarize::FloatArch] {
                let spec = NetSpec {
                    kind,
                    channels: ch,
                    height: hw,
                    width: hw,
                    lenet_dim: 2,
                    feature_act: FeatureAct::Linear,
                    kept: None,
                    binary,
                };
                spec.check().unwrap();
                let mut net = spec.init::<CpuTrain>(&dev);
                net.set_tau(0.9);
                assert_eq!(net.binary_layers().len(), layers, "{kind:?}");
                let x = Tensor::<CpuTrain, 4>::random(
                    [4, ch, hw, hw],
                    Distribution::Normal(0.0, 1.0),
                    &dev,
                );
                let f = net.forward_with(x, &Identity);
                assert_eq!(f.dims(), [4, spec.feature_dim()]);
                let grads = (f - 0.3).powf_scalar(2.0).sum().backward();
                assert!(net.first_weight_grad(&grads) > 0.0, "{kind:?} {binary:?}");
                for (name, l) in net.binary_layers() {
                    let sum = |g: Option<Tensor<Cpu, 1>>| g.map(|g| vals(g.abs().sum())[0]);
                    let (gw, ga) = match l {
                        BinaryLayer::Conv(c) => (
                            sum(c.conv.weight.val().grad(&grads).map(|g| g.flatten(0, 3))),
                            sum(c.alpha.val().grad(&grads)),
                        ),
                        BinaryLayer::Linear(l) => (
                            sum(l.fc.weight.val().grad(&grads).map(|g| g.flatten(0, 1))),
                            sum(l.alpha.val().grad(&grads)),
                        ),
                    };
                    let (gw, ga) = (gw.unwrap_or(0.0), ga.unwrap_or(0.0));
                    assert!(
                        gw > 0.0 && ga > 0.0,
                        "{kind:?} {binary:?} {name}: {gw} {ga}"
                    );
                }
            }
        }
        let lenet = NetSpec {
            kind: NetKind::Lenet,
            channels: 1,
            height: 8,
            width: 8,
            lenet_dim: 2,
            feature_act: FeatureAct::Relu,
            kept: None,
            binary: Binarize::Recu,
        };
        let e = lenet.check().unwrap_err().to_string();
        assert!(e.contains("not defined for net lenet"), "{e}");
    }
}
