//! The backbones' seams for the compression systems (field notes §8):
//!
//! - every convolution and linear layer of a backbone reads its weights
//!   through a [`WeightTransform`] (binary weights, fake-quantised weights),
//!   the identity by default;
//! - every backbone lists its prunable channel groups ([`ChannelGroup`]:
//!   the layers that produce a set of channels, the BatchNorms over them,
//!   the layers that read them).
//!
//! Layer names are the parameter paths of the backbone's module tree
//! without `.weight` (`conv1`, `blocks.3.conv2`, `convs.0.conv`), as in the
//! checkpoint's parameter list.

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
    /// True only for [`Identity`]: the layers then take the kernels' paths
    /// that read the module's own weights.
    fn is_identity(&self) -> bool {
        false
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
    /// stage's first block), must be pruned as one.
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
