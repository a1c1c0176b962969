//! Backbones: images `[B, Ch, H, W]` -> penultimate features `[B, D]`.
//!
//! Every backbone returns the features the head sees, separately from the
//! head, so that the probe and the exports measure exactly what the
//! classification layer works on. Legend: `B` batch, `Ch` image channels,
//! `D` feature dimension.

mod batch_norm;
pub mod binary;
mod cnn;
mod layers;
mod lenet;
mod mlp;
mod resnet;

pub use batch_norm::BatchNorm2d;
pub use binary::{Binarize, BinaryLayer};
pub use cnn::{Cnn, CnnConfig};
pub use layers::{ChannelGroup, Identity, LayerRef, WeightTransform};
pub use lenet::{LeNetPP, LeNetPPConfig};
pub use mlp::{Mlp, MlpConfig};
pub use resnet::{ResNet, ResNetConfig};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The backbones symfeat knows, by their CLI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    /// Two hidden fully connected layers (256, 128), ReLU. D = 128.
    Mlp,
    /// LeNet++ of the center-loss paper (Wen et al. 2016), PReLU; D configurable (2 for plots).
    Lenet,
    /// The reference CNN of the benchmarks: conv5x5 32 - pool - conv5x5 64 - pool - fc 128. D = 128.
    Cnn,
    /// CIFAR ResNet-20 (option-A shortcuts), D = 64.
    Resnet20,
    /// CIFAR ResNet-32.
    Resnet32,
    /// CIFAR ResNet-44.
    Resnet44,
    /// CIFAR ResNet-56.
    Resnet56,
    /// CIFAR ResNet-110 (the paper's backbone).
    Resnet110,
}

impl NetKind {
    /// All names, for help texts and errors.
    pub const NAMES: &'static str =
        "mlp, lenet, cnn, resnet20, resnet32, resnet44, resnet56, resnet110";

    /// Parse a CLI name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "mlp" => Self::Mlp,
            "lenet" | "lenet++" => Self::Lenet,
            "cnn" => Self::Cnn,
            "resnet20" => Self::Resnet20,
            "resnet32" => Self::Resnet32,
            "resnet44" => Self::Resnet44,
            "resnet56" => Self::Resnet56,
            "resnet110" => Self::Resnet110,
            _ => return None,
        })
    }

    /// Blocks per stage of a CIFAR ResNet (depth = 6 n + 2).
    fn resnet_blocks(self) -> Option<usize> {
        match self {
            Self::Resnet20 => Some(3),
            Self::Resnet32 => Some(5),
            Self::Resnet44 => Some(7),
            Self::Resnet56 => Some(9),
            Self::Resnet110 => Some(18),
            _ => None,
        }
    }
}

/// What the head sees (`feature_act`): the features after the backbone's
/// final activation, or signed ones (study v2, field notes §7: the
/// symmetrical layer's weights become the class centers only on signed
/// features).
///
/// Where it acts, per backbone:
/// - `mlp`, `cnn`: the ReLU after the last fully connected layer;
/// - `lenet`: the PReLU after the fully connected layer to D;
/// - ResNets: on the pooled 64-D feature. `linear` drops the last block's
///   final ReLU (the head sees the mean of the signed residual sum);
///   `bn` keeps it and normalises the pooled (non-negative) feature.
///
/// `bn` is `linear` for the fully connected backbones plus a BatchNorm1d
/// (PyTorch's semantics, no ReLU) between the backbone and the head; for
/// ResNets, the BatchNorm1d after pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureAct {
    /// The backbone's final activation (the reference nets; default).
    #[default]
    Relu,
    /// No final activation: signed features.
    Linear,
    /// BatchNorm1d (no activation) before the head: signed, normalised features.
    Bn,
}

impl FeatureAct {
    /// All names, for help texts and errors.
    pub const NAMES: &'static str = "relu, linear, bn";

    /// Parse a CLI name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "relu" => Self::Relu,
            "linear" | "none" => Self::Linear,
            "bn" | "batchnorm" => Self::Bn,
            _ => return None,
        })
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Linear => "linear",
            Self::Bn => "bn",
        }
    }
}

/// Images a backbone cannot take (the message says why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NetError(pub String);

/// What a backbone needs to be built.
#[derive(Debug, Clone)]
pub struct NetSpec {
    /// Which backbone.
    pub kind: NetKind,
    /// Image channels (1 for MNIST-like, 3 for CIFAR).
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Feature dimension for LeNet++ (ignored by the others, whose D is fixed).
    pub lenet_dim: usize,
    /// What the head sees.
    pub feature_act: FeatureAct,
    /// A pruned backbone (`symfeat prune`): per channel group of the full
    /// backbone ([`Self::full_groups`], in [`Backbone::channel_groups`]'
    /// order), the sorted indices of the channels kept. `None`: full widths.
    pub kept: Option<Vec<Vec<usize>>>,
    /// Binary layers (1-bit weights and activations, [`binary`]); defined
    /// for mlp, cnn and the ResNets.
    pub binary: Binarize,
}

impl NetSpec {
    /// Feature dimension D of the built backbone.
    pub fn feature_dim(&self) -> usize {
        match self.kind {
            NetKind::Mlp | NetKind::Cnn => 128,
            NetKind::Lenet => self.lenet_dim,
            _ => 64,
        }
    }

    /// The channel groups of the full (unpruned) backbone: name and width,
    /// in [`Backbone::channel_groups`]' order.
    pub fn full_groups(&self) -> Vec<(String, usize)> {
        match self.kind {
            NetKind::Mlp => vec![("fc1".into(), 256)],
            NetKind::Cnn => vec![("conv1".into(), 32), ("conv2".into(), 64)],
            NetKind::Lenet => [32, 32, 64, 64, 128, 128]
                .iter()
                .enumerate()
                .map(|(i, &c)| (format!("convs.{i}.conv"), c))
                .collect(),
            kind => {
                let n = kind.resnet_blocks().unwrap_or(3);
                let mut g: Vec<(String, usize)> = (0..3 * n)
                    .map(|b| (format!("blocks.{b}.conv1"), [16, 32, 64][b / n]))
                    .collect();
                g.push(("stage1".into(), 16));
                g.push(("stage2".into(), 32));
                g
            }
        }
    }

    /// The width of group `g` as built (`full` without `kept`).
    fn width(&self, g: usize, full: usize) -> usize {
        self.kept.as_ref().map_or(full, |k| k[g].len())
    }

    /// Check the image geometry against what the backbone accepts, and the
    /// kept channels against its groups.
    pub fn check(&self) -> Result<(), NetError> {
        if self.binary != Binarize::None {
            if self.kind == NetKind::Lenet {
                return Err(NetError(format!(
                    "binary = {}: not defined for net lenet (binary nets: mlp, cnn, resnet20/32/44/56/110)",
                    self.binary.name()
                )));
            }
            if self.kept.is_some() {
                return Err(NetError(
                    "channels_kept: a binary net cannot be pruned (binary nets have fixed widths)"
                        .into(),
                ));
            }
        }
        if let Some(kept) = &self.kept {
            let full = self.full_groups();
            if kept.len() != full.len() {
                return Err(NetError(format!(
                    "channels_kept has {} groups; net {:?} has {} ({})",
                    kept.len(),
                    self.kind,
                    full.len(),
                    full.iter()
                        .map(|g| g.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            for ((name, width), k) in full.iter().zip(kept) {
                if k.is_empty() {
                    return Err(NetError(format!(
                        "channels_kept: group {name} keeps no channel (at least 1 is needed)"
                    )));
                }
                if k.windows(2).any(|p| p[0] >= p[1]) || k.iter().any(|&i| i >= *width) {
                    return Err(NetError(format!(
                        "channels_kept: group {name} must list increasing channel indices below {width}, got {k:?}"
                    )));
                }
            }
        }
        if self.kind == NetKind::Lenet && self.lenet_dim == 0 {
            return Err(NetError(
                "--feature-dim must be at least 1 for lenet".into(),
            ));
        }
        let min = match self.kind {
            NetKind::Mlp => 1,
            NetKind::Cnn => 4,
            NetKind::Lenet => 8,
            _ => 8,
        };
        if self.height < min || self.width < min {
            return Err(NetError(format!(
                "net {:?} needs images of at least {min}x{min}, got {}x{}",
                self.kind, self.height, self.width
            )));
        }
        if self.kind.resnet_blocks().is_some()
            && (!self.height.is_multiple_of(4) || !self.width.is_multiple_of(4))
        {
            return Err(NetError(format!(
                "CIFAR ResNets need height and width divisible by 4, got {}x{}",
                self.height, self.width
            )));
        }
        Ok(())
    }

    /// Build the backbone on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Backbone<B> {
        let act = self.feature_act == FeatureAct::Relu;
        if self.binary != Binarize::None {
            return self.init_binary(act, device);
        }
        match self.kind {
            NetKind::Mlp => Backbone::Mlp(
                MlpConfig::new(self.channels * self.height * self.width)
                    .with_hidden(self.width(0, 256))
                    .with_final_act(act)
                    .init(device),
            ),
            NetKind::Cnn => Backbone::Cnn(
                CnnConfig::new(self.channels, self.height, self.width)
                    .with_conv1(self.width(0, 32))
                    .with_conv2(self.width(1, 64))
                    .with_final_act(act)
                    .init(device),
            ),
            NetKind::Lenet => {
                let full = [32, 32, 64, 64, 128, 128];
                let widths = std::array::from_fn(|g| self.width(g, full[g]));
                Backbone::Lenet(
                    LeNetPPConfig::new(self.channels, self.height, self.width, self.lenet_dim)
                        .with_widths(widths)
                        .with_final_act(act)
                        .init(device),
                )
            }
            kind => {
                let blocks = kind.resnet_blocks().unwrap_or(3);
                Backbone::Resnet(
                    ResNetConfig::new(self.channels, blocks)
                        .with_final_act(self.feature_act != FeatureAct::Linear)
                        .with_kept(self.kept.clone())
                        .init(device),
                )
            }
        }
    }

    /// The binary backbone of [`Self::init`] (see [`binary`]).
    fn init_binary<B: Backend>(&self, act: bool, device: &B::Device) -> Backbone<B> {
        let mode = self.binary;
        let d = self.feature_dim();
        match self.kind {
            NetKind::Mlp => Backbone::BinaryMlp(binary::BinaryMlp::new(
                self.channels * self.height * self.width,
                d,
                act,
                mode,
                device,
            )),
            // check() refuses lenet; the CNN stands in should it be reached.
            NetKind::Cnn | NetKind::Lenet => Backbone::BinaryCnn(binary::BinaryCnn::new(
                [self.channels, self.height, self.width],
                d,
                act,
                mode,
                device,
            )),
            kind => Backbone::BinaryResnet(binary::BinaryResNet::new(
                self.channels,
                kind.resnet_blocks().unwrap_or(3),
                act,
                mode,
                device,
            )),
        }
    }

    /// The BatchNorm1d between backbone and head (`feature_act = bn`), with
    /// PyTorch's defaults; `None` otherwise.
    pub fn feature_bn<B: Backend>(&self, device: &B::Device) -> Option<BatchNorm2d<B>> {
        (self.feature_act == FeatureAct::Bn).then(|| BatchNorm2d::new(self.feature_dim(), device))
    }
}

/// One backbone of any kind (the module tree stores which).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one backbone per model: size does not matter
pub enum Backbone<B: Backend> {
    /// See [`Mlp`].
    Mlp(Mlp<B>),
    /// See [`Cnn`].
    Cnn(Cnn<B>),
    /// See [`LeNetPP`].
    Lenet(LeNetPP<B>),
    /// See [`ResNet`].
    Resnet(ResNet<B>),
    /// See [`binary::BinaryMlp`].
    BinaryMlp(binary::BinaryMlp<B>),
    /// See [`binary::BinaryCnn`].
    BinaryCnn(binary::BinaryCnn<B>),
    /// See [`binary::BinaryResNet`].
    BinaryResnet(binary::BinaryResNet<B>),
}

impl<B: Backend> Backbone<B> {
    /// # Shapes
    /// `images [B, Ch, H, W]` -> features `[B, D]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_with(images, &Identity)
    }

    /// [`Self::forward`] with every convolution and linear layer reading its
    /// weights through `transform`.
    pub fn forward_with(
        &self,
        images: Tensor<B, 4>,
        transform: &dyn WeightTransform<B>,
    ) -> Tensor<B, 2> {
        match self {
            Self::Mlp(m) => m.forward_with(images, transform),
            Self::Cnn(m) => m.forward_with(images, transform),
            Self::Lenet(m) => m.forward_with(images, transform),
            Self::Resnet(m) => m.forward_with(images, transform),
            Self::BinaryMlp(m) => m.forward_with(images, transform),
            Self::BinaryCnn(m) => m.forward_with(images, transform),
            Self::BinaryResnet(m) => m.forward_with(images, transform),
        }
    }

    /// Multiply-accumulates of one `h x w` image through the backbone:
    /// convolutions `out x in x kh x kw x H_out x W_out`, linear layers
    /// `in x out`; BatchNorm, activations, pooling and shortcuts are not
    /// counted (Molchanov et al.'s rule for conv and linear, field notes
    /// §8.4).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        match self {
            Self::Mlp(m) => m.macs(),
            Self::Cnn(m) => m.macs(h, w),
            Self::Lenet(m) => m.macs(h, w),
            Self::Resnet(m) => m.macs(h, w),
            Self::BinaryMlp(m) => m.macs(),
            Self::BinaryCnn(m) => m.macs(h, w),
            Self::BinaryResnet(m) => m.macs(h, w),
        }
    }

    /// The binary layers of a binary backbone, by name (none otherwise).
    pub fn binary_layers(&self) -> Vec<(String, BinaryLayer<'_, B>)> {
        match self {
            Self::BinaryMlp(m) => m.binary_layers(),
            Self::BinaryCnn(m) => m.binary_layers(),
            Self::BinaryResnet(m) => m.binary_layers(),
            _ => vec![],
        }
    }

    /// Set ReCU's tau on every binary layer (a no-op on float backbones).
    pub fn set_tau(&mut self, tau: f64) {
        match self {
            Self::BinaryMlp(m) => m.set_tau(tau),
            Self::BinaryCnn(m) => m.set_tau(tau),
            Self::BinaryResnet(m) => m.set_tau(tau),
            _ => {}
        }
    }

    /// The backbone's prunable channel groups (see [`ChannelGroup`]); layer
    /// names are relative to the backbone.
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        match self {
            Self::Mlp(m) => m.channel_groups(),
            Self::Cnn(m) => m.channel_groups(),
            Self::Lenet(m) => m.channel_groups(),
            Self::Resnet(m) => m.channel_groups(),
            // Binary nets are not prunable (fixed widths).
            Self::BinaryMlp(_) | Self::BinaryCnn(_) | Self::BinaryResnet(_) => vec![],
        }
    }
}

#[cfg(test)]
impl<B: burn::tensor::backend::AutodiffBackend> Backbone<B> {
    /// Sum of |gradient| of the first layer's weight (tests).
    pub(crate) fn first_weight_grad(&self, grads: &B::Gradients) -> f64 {
        match self {
            Self::Mlp(m) => m.first_weight_grad(grads),
            Self::Cnn(m) => m.first_weight_grad(grads),
            Self::Lenet(m) => m.first_weight_grad(grads),
            Self::Resnet(m) => m.first_weight_grad(grads),
            Self::BinaryMlp(m) => crate::kernels::test_util::grad_abs_sum(m.first_weight(), grads),
            Self::BinaryCnn(m) => crate::kernels::test_util::grad_abs_sum(m.first_weight(), grads),
            Self::BinaryResnet(m) => {
                crate::kernels::test_util::grad_abs_sum(m.first_weight(), grads)
            }
        }
    }
}

#[cfg(test)]
mod feature_act_tests {
    use super::*;
    use crate::backend::CpuTrain;
    use burn::tensor::Distribution;

    /// Every net under every `feature_act`: `[B, D]` features, non-negative
    /// exactly with `relu` (LeNet's PReLU aside), and a gradient that reaches
    /// the first layer through the head's input (and BatchNorm1d's gamma).
    #[test]
    fn every_net_sees_the_features_it_is_asked_for_and_passes_gradients() {
        let dev = Default::default();
        for (kind, ch, hw) in [
            (NetKind::Mlp, 1, 8),
            (NetKind::Cnn, 1, 8),
            (NetKind::Lenet, 1, 8),
            (NetKind::Resnet20, 3, 8),
        ] {
            for act in [FeatureAct::Relu, FeatureAct::Linear, FeatureAct::Bn] {
                let spec = NetSpec {
                    kind,
                    channels: ch,
                    height: hw,
                    width: hw,
                    // Wide enough that a linear feature layer shows a
                    // negative value: on 8x8 noise LeNet's hidden features
                    // are nearly the same for every sample, so with 3
                    // outputs all 18 values were positive in ~10 % of
                    // unseeded runs (a CI failure).
                    lenet_dim: 16,
                    feature_act: act,
                    kept: None,
                    binary: Binarize::None,
                };
                let net = spec.init::<CpuTrain>(&dev);
                let bn = spec.feature_bn::<CpuTrain>(&dev);
                assert_eq!(bn.is_some(), act == FeatureAct::Bn);
                let x = Tensor::<CpuTrain, 4>::random(
                    [6, ch, hw, hw],
                    Distribution::Normal(0.0, 1.0),
                    &dev,
                );
                let mut f = net.forward(x);
                if let Some(bn) = &bn {
                    f = bn.forward_features(f);
                }
                assert_eq!(f.dims(), [6, spec.feature_dim()], "{kind:?} {act:?}");
                let v = crate::kernels::test_util::vals(f.clone());
                let negative = v.iter().filter(|x| **x < 0.0).count();
                match act {
                    FeatureAct::Relu if kind != NetKind::Lenet => {
                        assert_eq!(negative, 0, "{kind:?} {act:?}")
                    }
                    FeatureAct::Relu => {}
                    _ => assert!(negative > 0, "{kind:?} {act:?}: no negative feature"),
                }
                // A loss that depends on the sign: sum (f - 0.3)^2.
                let grads = (f - 0.3).powf_scalar(2.0).sum().backward();
                let first = net.first_weight_grad(&grads);
                assert!(
                    first > 0.0,
                    "{kind:?} {act:?}: no gradient at the first layer"
                );
                if let Some(bn) = &bn {
                    let g = bn.gamma.val().grad(&grads).expect("gamma gradient");
                    let g: Vec<f32> = g.into_data().convert::<f32>().to_vec().unwrap();
                    assert!(g.iter().any(|v| *v != 0.0), "{kind:?}: BatchNorm1d gamma");
                }
            }
        }
    }
}
