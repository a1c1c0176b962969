//! The backbones' seams for the compression systems (field notes §8):
//!
//! - every convolution and linear layer of a backbone reads its weights
//!   through a [`WeightTransform`] (e.g. fake-quantised weights),
//!   the identity by default; the binary layers of binary backbones
//!   compute through it too ([`WeightTransform::binary_conv`]);
//! - every backbone lists its prunable channel groups ([`ChannelGroup`]:
//!   the layers that produce a set of channels, the BatchNorms over them,
//!   the layers that read them).
//!
//! Layer names are the parameter paths of the backbone's module tree
//! without `.weight` (`conv1`, `blocks.3.conv2`, `convs.0.conv`), as in the
//! checkpoint's parameter list.

use super::binary::{BinaryConv, BinaryLinear};
use crate::kernels;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// The layer whose weights a transform sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerRef<'a> {
    /// Its name (parameter path without `.weight`).
    pub name: &'a str,
    /// Whether it reads the images (the first layer, which binary networks
    /// keep in full precision).
    pub first: bool,
}

/// A transform of the weights a layer reads, inside the autodiff graph
/// (its gradient reaches the stored weights, e.g. through a
/// straight-through estimator). Weights come as burn stores them:
/// `[out, in, kh, kw]` for a convolution, `[in, out]` for a linear layer.
/// Both methods default to the identity.
pub trait WeightTransform<B: Backend> {
    /// The weights the convolution `layer` computes with.
    fn conv(&self, _layer: &LayerRef<'_>, weight: Tensor<B, 4>) -> Tensor<B, 4> {
        weight
    }
    /// The weights the linear `layer` computes with.
    fn linear(&self, _layer: &LayerRef<'_>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
        weight
    }
    /// True when [`Self::conv`] and [`Self::linear`] return the weights
    /// unchanged ([`Identity`], the pruner's gates): the layers then take
    /// the kernels' paths that read the module's own weights.
    fn is_identity(&self) -> bool {
        false
    }
    /// The activations of channel group `group` (a [`ChannelGroup`]'s name)
    /// where a pruner gates them: `[B, C, H, W]` maps after the group's
    /// activation (and pooling; after BatchNorm + ReLU in ResNets, after
    /// the residual sum for a stage). The identity by default.
    fn gate(&self, _group: &str, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x
    }
    /// [`Self::gate`] for `[B, C]` activations (the MLP's hidden layer).
    fn gate2(&self, _group: &str, x: Tensor<B, 2>) -> Tensor<B, 2> {
        x
    }
    /// A binary convolution `layer` of a binary backbone on its input `x`
    /// (before the sign): by default its float simulation
    /// ([`BinaryConv::simulate`]); the bit-packed inference computes it
    /// with XNOR and popcount instead.
    fn binary_conv(
        &self,
        _layer: &LayerRef<'_>,
        conv: &BinaryConv<B>,
        x: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        conv.simulate(x)
    }
    /// [`Self::binary_conv`] for a binary fully connected layer.
    fn binary_linear(
        &self,
        _layer: &LayerRef<'_>,
        fc: &BinaryLinear<B>,
        x: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        fc.simulate(x)
    }
}

/// The weights as stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl<B: Backend> WeightTransform<B> for Identity {
    fn is_identity(&self) -> bool {
        true
    }
}

/// `layer(x)` with the weights through `t`.
pub(crate) fn conv<B: Backend>(
    layer: &Conv2d<B>,
    x: Tensor<B, 4>,
    t: &dyn WeightTransform<B>,
    at: LayerRef<'_>,
) -> Tensor<B, 4> {
    if t.is_identity() {
        return kernels::conv::forward(layer, x);
    }
    kernels::conv::forward_weight(layer, t.conv(&at, layer.weight.val()), x)
}

/// `layer(x)` with the weights through `t` (burn's `Linear::forward`).
pub(crate) fn linear<B: Backend>(
    layer: &Linear<B>,
    x: Tensor<B, 2>,
    t: &dyn WeightTransform<B>,
    at: LayerRef<'_>,
) -> Tensor<B, 2> {
    let w = layer.weight.val();
    let w = if t.is_identity() { w } else { t.linear(&at, w) };
    burn::tensor::module::linear(x, w, layer.bias.as_ref().map(|b| b.val()))
}

/// Multiply-accumulates of `layer` on one `h x w` input (Molchanov et al.'s
/// count, field notes §8.4): `out x in/groups x kh x kw x H_out x W_out`.
/// Biases, BatchNorm, activations, pooling and shortcuts are not counted.
pub(crate) fn conv_macs<B: Backend>(layer: &Conv2d<B>, h: usize, w: usize) -> u64 {
    let [out, inp, kh, kw] = layer.weight.dims();
    let (ho, wo) = conv_out(layer, h, w);
    (out * inp * kh * kw * ho * wo) as u64
}

/// Output size of `layer` on an `h x w` input.
pub(crate) fn conv_out<B: Backend>(layer: &Conv2d<B>, h: usize, w: usize) -> (usize, usize) {
    let [_, _, kh, kw] = layer.weight.dims();
    let (pt, pl, pb, pr) = match layer.padding {
        burn::nn::PaddingConfig2d::Explicit(t, l, b, r) => (t, l, b, r),
        burn::nn::PaddingConfig2d::Valid => (0, 0, 0, 0),
        // Same keeps the size at stride 1.
        burn::nn::PaddingConfig2d::Same => {
            let (ph, pw) = (kh.saturating_sub(1), kw.saturating_sub(1));
            (ph / 2, pw / 2, ph - ph / 2, pw - pw / 2)
        }
    };
    let [sh, sw] = layer.stride;
    let [dh, dw] = layer.dilation;
    let size = |n: usize, p: usize, k: usize, d: usize, s: usize| {
        (n + p).saturating_sub(d * (k - 1) + 1) / s.max(1) + 1
    };
    (size(h, pt + pb, kh, dh, sh), size(w, pl + pr, kw, dw, sw))
}

/// Multiply-accumulates of a linear layer on one input: `in x out`.
pub(crate) fn linear_macs<B: Backend>(layer: &Linear<B>) -> u64 {
    let [inp, out] = layer.weight.dims();
    (inp * out) as u64
}

/// A set of channels that can be pruned together: removing channel k
/// removes output k of every producer, channel k of every norm, and the
/// inputs of every consumer that read channel k.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelGroup {
    /// The group's name (its first producer, or `stage<k>` for a residual stage).
    pub name: String,
    /// Channels in the group.
    pub channels: usize,
    /// Layers whose outputs are these channels.
    pub producers: Vec<String>,
    /// BatchNorms over them.
    pub norms: Vec<String>,
    /// Layers that read them, with the number of inputs per channel (1 for
    /// a convolution, `H W` for a linear layer after a flatten).
    pub consumers: Vec<(String, usize)>,
    /// Tied by residual connections: the channels of a ResNet stage, which
    /// the option-A shortcut also carries (zero-padded into the next
    /// stage's first block), must be pruned as one. The shortcut places a
    /// stage's C channels at `[pad, pad + C)` of the next stage's
    /// `pad = (C' - C) / 2`: a pruner that changes C or C' must rebuild that
    /// mapping (the last stage's stream, the feature, is coupled the same
    /// way to stage 2 and is not listed).
    pub tied: bool,
}

impl ChannelGroup {
    /// One producer, no norm, consumers as given.
    pub(crate) fn plain(
        producer: &str,
        channels: usize,
        norms: &[&str],
        consumers: &[(&str, usize)],
    ) -> Self {
        Self {
            name: producer.to_string(),
            channels,
            producers: vec![producer.to_string()],
            norms: norms.iter().map(|n| n.to_string()).collect(),
            consumers: consumers.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
            tied: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuTrain};
    use crate::nets::{Backbone, FeatureAct, NetKind, NetSpec};
    use burn::tensor::Distribution;
    use std::cell::RefCell;

    /// Records the layers it sees and scales every weight by `factor`
    /// (1: the weights as stored, through the transform path).
    struct Scale<'a> {
        factor: f64,
        seen: &'a RefCell<Vec<(String, bool)>>,
    }

    impl<B: Backend> WeightTransform<B> for Scale<'_> {
        fn conv(&self, layer: &LayerRef<'_>, w: Tensor<B, 4>) -> Tensor<B, 4> {
            self.seen
                .borrow_mut()
                .push((layer.name.into(), layer.first));
            w * self.factor
        }
        fn linear(&self, layer: &LayerRef<'_>, w: Tensor<B, 2>) -> Tensor<B, 2> {
            self.seen
                .borrow_mut()
                .push((layer.name.into(), layer.first));
            w * self.factor
        }
    }

    fn nets() -> Vec<(NetSpec, &'static [&'static str])> {
        let spec = |kind, ch, hw| NetSpec {
            kind,
            channels: ch,
            height: hw,
            width: hw,
            lenet_dim: 3,
            feature_act: FeatureAct::Linear,
            kept: None,
            binary: crate::nets::Binarize::None,
        };
        vec![
            (spec(NetKind::Mlp, 1, 8), &["fc1", "fc2"][..]),
            (spec(NetKind::Cnn, 1, 8), &["conv1", "conv2", "fc"][..]),
            (
                spec(NetKind::Lenet, 1, 8),
                &[
                    "convs.0.conv",
                    "convs.1.conv",
                    "convs.2.conv",
                    "convs.3.conv",
                    "convs.4.conv",
                    "convs.5.conv",
                    "fc",
                ][..],
            ),
            (spec(NetKind::Resnet20, 3, 8), &[][..]),
        ]
    }

    /// Every conv and linear layer reads its weights through the transform,
    /// once, by name, the first layer flagged; the transform path with the
    /// stored weights gives the module path's features; and the gradient
    /// reaches the stored weights through the transform (x 0: none).
    #[test]
    fn every_layer_reads_its_weights_through_the_transform() {
        let dev = Default::default();
        for (spec, names) in nets() {
            CpuTrain::seed(&dev, 1);
            let net: Backbone<CpuTrain> = spec.init(&dev);
            let x = Tensor::<CpuTrain, 4>::random(
                [2, spec.channels, spec.height, spec.width],
                Distribution::Normal(0.0, 1.0),
                &dev,
            );
            let seen = RefCell::new(vec![]);
            let plain: Vec<f32> = net.forward(x.clone()).into_data().to_vec().unwrap();
            let same = Scale {
                factor: 1.0,
                seen: &seen,
            };
            let via: Vec<f32> = net
                .forward_with(x.clone(), &same)
                .into_data()
                .to_vec()
                .unwrap();
            for (a, b) in plain.iter().zip(&via) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                    "{:?}: {a} vs {b}",
                    spec.kind
                );
            }
            let seen = seen.into_inner();
            let first: Vec<&str> = seen.iter().filter(|s| s.1).map(|s| s.0.as_str()).collect();
            assert_eq!(first.len(), 1, "{:?}: first layers {first:?}", spec.kind);
            if spec.kind == NetKind::Resnet20 {
                // stem + 9 blocks x 2 convs
                assert_eq!(seen.len(), 19);
                assert_eq!(seen[0].0, "conv");
                assert_eq!(seen[18].0, "blocks.8.conv2");
            } else {
                let got: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
                assert_eq!(got, names, "{:?}", spec.kind);
            }
            let grad_of = |factor: f64| {
                let seen = RefCell::new(vec![]);
                let t = Scale {
                    factor,
                    seen: &seen,
                };
                let loss = net.forward_with(x.clone(), &t).powf_scalar(2.0).sum();
                net.first_weight_grad(&loss.backward())
            };
            assert!(grad_of(1.0) > 0.0, "{:?}", spec.kind);
            assert_eq!(grad_of(0.0), 0.0, "{:?}", spec.kind);
        }
    }

    /// Every group names layers of the backbone whose shapes agree with it:
    /// producers output `channels`, norms hold `channels`, consumers read
    /// `channels x per-channel` inputs.
    #[test]
    fn channel_groups_name_real_layers_of_matching_shapes() {
        let dev = Default::default();
        for (spec, _) in nets() {
            let net: Backbone<Cpu> = spec.init(&dev);
            let shapes: Vec<(String, Vec<usize>)> = crate::train::param_shapes(&net);
            let shape = |layer: &str, param: &str| -> Vec<usize> {
                let want = format!("{layer}.{param}");
                shapes
                    .iter()
                    .find(|(k, _)| k.split_once('.').is_some_and(|(_, rest)| rest == want))
                    .map(|(_, s)| s.clone())
                    .unwrap_or_else(|| panic!("{:?}: no {want} in {shapes:?}", spec.kind))
            };
            let groups = net.channel_groups();
            assert!(!groups.is_empty());
            for g in &groups {
                for p in &g.producers {
                    let s = shape(p, "weight");
                    // conv [out, in, kh, kw]; linear [in, out]
                    let out = if s.len() == 4 { s[0] } else { s[1] };
                    assert_eq!(out, g.channels, "{:?} {}: producer {p}", spec.kind, g.name);
                }
                for n in &g.norms {
                    let param = if n.ends_with("act") { "alpha" } else { "gamma" };
                    assert_eq!(
                        shape(n, param),
                        vec![g.channels],
                        "{:?}: norm {n}",
                        spec.kind
                    );
                }
                for (c, per) in &g.consumers {
                    let s = shape(c, "weight");
                    let inputs = if s.len() == 4 { s[1] } else { s[0] };
                    assert_eq!(
                        inputs,
                        g.channels * per,
                        "{:?} {}: consumer {c}",
                        spec.kind,
                        g.name
                    );
                }
            }
            if spec.kind == NetKind::Resnet20 {
                let tied: Vec<&str> = groups
                    .iter()
                    .filter(|g| g.tied)
                    .map(|g| g.name.as_str())
                    .collect();
                assert_eq!(tied, ["stage1", "stage2"]);
                assert_eq!(groups.len(), 9 + 2);
                let s1 = &groups[9];
                assert_eq!(
                    (s1.channels, s1.producers.len(), s1.consumers.len()),
                    (16, 4, 4)
                );
            }
        }
    }
}
