//! CIFAR ResNets (He et al., CVPR 2016, section 4.2) with option-A shortcuts:
//! 3x3 conv 16 - BN - ReLU, three stages of n basic blocks (16, 32, 64
//! channels, stride 2 at the start of stages 2 and 3), global average pool.
//! Depth 6n + 2: ResNet-20 (n=3) ... ResNet-110 (n=18). Feature size D = 64.
//!
//! Option A: when a block changes shape, the shortcut subsamples every other
//! pixel (`x[:, :, ::2, ::2]`) and pads the new channels with zeros, adding no
//! parameter. Convolutions have no bias and use Kaiming-normal (fan-in, gain
//! sqrt 2) initialisation, as in the widely used PyTorch CIFAR ResNet code.

use super::BatchNorm2d;
use super::layers::{ChannelGroup, LayerRef, WeightTransform, conv};
use crate::kernels::{pool, shortcut};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::prelude::*;

/// Builds a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Input channels.
    pub channels: usize,
    /// Blocks per stage (n).
    pub blocks: usize,
    /// Apply the last block's final ReLU (`feature_act` relu or bn); off
    /// (`linear`): the pooled features are the mean of the signed sum
    /// `bn2(conv2(..)) + shortcut` of the last block.
    #[config(default = true)]
    pub final_act: bool,
    /// A pruned ResNet: per channel group of the full one (see
    /// [`ResNet::channel_groups`]: each block's conv1, then stage1 and
    /// stage2), the indices of the channels kept. `None`: the full widths.
    #[config(default = "None")]
    pub kept: Option<Vec<Vec<usize>>>,
}

/// The residual streams' full widths.
const STAGES: [usize; 3] = [16, 32, 64];
/// The tied stage groups' names (the last stage, the feature, is not
/// prunable).
const STAGE_GROUPS: [&str; 2] = ["stage1", "stage2"];

/// The option-A shortcut between stages of kept channels `from` and `to`
/// (indices into the full widths, `pad` zero channels each side in the
/// full net): per output channel, its input channel or `usize::MAX`.
pub(crate) fn shortcut_route(from: &[usize], to: &[usize], pad: usize) -> Vec<usize> {
    to.iter()
        .map(|&o| {
            o.checked_sub(pad)
                .and_then(|i| from.binary_search(&i).ok())
                .unwrap_or(usize::MAX)
        })
        .collect()
}

fn conv3x3<B: Backend>(cin: usize, cout: usize, stride: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: false,
        })
        .init(device)
}

/// Basic block: conv-BN-ReLU-conv-BN + option-A shortcut, ReLU.
#[derive(Module, Debug)]
struct BasicBlock<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm2d<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm2d<B>,
    stride: usize,
    /// Per output channel, the input channel the shortcut copies
    /// (`usize::MAX`: a zero channel); empty: the identity.
    route: Vec<usize>,
    relu: bool,
}

impl<B: Backend> BasicBlock<B> {
    /// `cin` -> `mid` (conv1) -> `cout` (conv2); `route` as the field.
    fn new(
        [cin, mid, cout]: [usize; 3],
        stride: usize,
        route: Vec<usize>,
        relu: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            conv1: conv3x3(cin, mid, stride, device),
            bn1: BatchNorm2d::new(mid, device),
            conv2: conv3x3(mid, cout, 1, device),
            bn2: BatchNorm2d::new(cout, device),
            stride,
            route,
            relu,
        }
    }

    fn forward(&self, x: Tensor<B, 4>, t: &dyn WeightTransform<B>, k: usize) -> Tensor<B, 4> {
        let (n1, n2) = (format!("blocks.{k}.conv1"), format!("blocks.{k}.conv2"));
        let out = self.bn1.forward_relu(
            conv(
                &self.conv1,
                x.clone(),
                t,
                LayerRef {
                    name: &n1,
                    first: false,
                },
            ),
            None,
        );
        let out = t.gate(&n1, out);
        let out = conv(
            &self.conv2,
            out,
            t,
            LayerRef {
                name: &n2,
                first: false,
            },
        );
        self.bn2.forward_add(out, Some(self.shortcut(x)), self.relu)
    }

    /// Option-A shortcut: subsample by the stride, route the channels.
    fn shortcut(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        // x[:, :, ::2, ::2] needs even H and W (checked by NetSpec::check).
        shortcut::option_a(x, self.stride, &self.route)
    }
}

/// CIFAR ResNet backbone.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm2d<B>,
    blocks: Vec<BasicBlock<B>>,
}

impl ResNetConfig {
    /// Build on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let n = self.blocks;
        let all = |c: usize| (0..c).collect::<Vec<usize>>();
        // Kept channels of each stream and of each block's conv1.
        let (streams, inner): ([Vec<usize>; 3], Vec<usize>) = match &self.kept {
            Some(k) => (
                [k[3 * n].clone(), k[3 * n + 1].clone(), all(STAGES[2])],
                k[..3 * n].iter().map(Vec::len).collect(),
            ),
            None => (STAGES.map(all), (0..3 * n).map(|b| STAGES[b / n]).collect()),
        };
        let mut blocks = Vec::with_capacity(3 * n);
        for stage in 0..3 {
            for i in 0..n {
                let b = stage * n + i;
                let cout = streams[stage].len();
                let (stride, cin, route) = if stage > 0 && i == 0 {
                    let pad = (STAGES[stage] - STAGES[stage - 1]) / 2;
                    let from = &streams[stage - 1];
                    (2, from.len(), shortcut_route(from, &streams[stage], pad))
                } else {
                    (1, cout, vec![])
                };
                let last = stage == 2 && i + 1 == n;
                let relu = !last || self.final_act;
                blocks.push(BasicBlock::new(
                    [cin, inner[b], cout],
                    stride,
                    route,
                    relu,
                    device,
                ));
            }
        }
        ResNet {
            conv: conv3x3(self.channels, streams[0].len(), 1, device),
            bn: BatchNorm2d::new(streams[0].len(), device),
            blocks,
        }
    }
}

impl<B: Backend> ResNet<B> {
    /// # Shapes
    /// `[B, Ch, H, W]` -> `[B, 64]`.
    pub fn forward_with(&self, images: Tensor<B, 4>, t: &dyn WeightTransform<B>) -> Tensor<B, 2> {
        let stem = conv(
            &self.conv,
            images,
            t,
            LayerRef {
                name: "conv",
                first: true,
            },
        );
        let x = self.bn.forward_relu(stem, None); // [B, 16, H, W]
        let mut x = t.gate(STAGE_GROUPS[0], x);
        let mut stage = 0;
        for (k, block) in self.blocks.iter().enumerate() {
            if k > 0 && block.stride != 1 {
                stage += 1;
            }
            x = block.forward(x, t, k);
            if let Some(group) = STAGE_GROUPS.get(stage) {
                x = t.gate(group, x);
            }
        }
        pool::global_avg_pool(x) // [B, 64, H/4, W/4] -> [B, 64]
    }

    /// Multiply-accumulates of one image of `h x w` (see
    /// [`super::Backbone::macs`]).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        use super::layers::{conv_macs, conv_out};
        let mut total = conv_macs(&self.conv, h, w);
        let (mut h, mut w) = conv_out(&self.conv, h, w);
        for b in &self.blocks {
            total += conv_macs(&b.conv1, h, w);
            (h, w) = conv_out(&b.conv1, h, w);
            total += conv_macs(&b.conv2, h, w);
        }
        total
    }

    /// Per block, conv1's channels (bn1, read by conv2); per stage but the
    /// last, the residual stream's channels, tied (the stem or the stage's
    /// first block's conv2 and every block's conv2 write into it, with their
    /// BatchNorms; every block's conv1 of the stage and of the next stage's
    /// first block read it, the latter also through the option-A
    /// shortcut). The last stage's stream is the pooled feature the head
    /// reads, not prunable here.
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        let width = |c: &Conv2d<B>| c.weight.dims()[0];
        let mut groups: Vec<ChannelGroup> = self
            .blocks
            .iter()
            .enumerate()
            .map(|(k, b)| {
                ChannelGroup::plain(
                    &format!("blocks.{k}.conv1"),
                    width(&b.conv1),
                    &[&format!("blocks.{k}.bn1")],
                    &[(&format!("blocks.{k}.conv2"), 1)],
                )
            })
            .collect();
        // Stages: runs of blocks of one width.
        let mut stage_of: Vec<usize> = vec![];
        for b in &self.blocks {
            let s = match stage_of.last() {
                Some(&s) if b.stride == 1 => s,
                Some(&s) => s + 1,
                None => 0,
            };
            stage_of.push(s);
        }
        let stages = stage_of.last().map_or(0, |s| s + 1);
        for (s, stage_name) in STAGE_GROUPS
            .iter()
            .enumerate()
            .take(stages.saturating_sub(1))
        {
            let blocks: Vec<usize> = (0..self.blocks.len())
                .filter(|&k| stage_of[k] == s)
                .collect();
            let mut producers = vec![];
            let mut norms = vec![];
            if s == 0 {
                producers.push("conv".to_string());
                norms.push("bn".to_string());
            }
            let mut consumers = vec![];
            for (i, &k) in blocks.iter().enumerate() {
                producers.push(format!("blocks.{k}.conv2"));
                norms.push(format!("blocks.{k}.bn2"));
                // A later stage's first block reads the previous stream.
                if s == 0 || i > 0 {
                    consumers.push((format!("blocks.{k}.conv1"), 1));
                }
            }
            if let Some(&next) = (0..self.blocks.len())
                .find(|&k| stage_of[k] == s + 1)
                .as_ref()
            {
                consumers.push((format!("blocks.{next}.conv1"), 1));
            }
            let channels = blocks.first().map_or(0, |&k| width(&self.blocks[k].conv2));
            groups.push(ChannelGroup {
                name: stage_name.to_string(),
                channels,
                producers,
                norms,
                consumers,
                tied: true,
            });
        }
        groups
    }
}

#[cfg(test)]
impl<B: burn::tensor::backend::AutodiffBackend> ResNet<B> {
    /// Sum of |gradient| of the first layer's weight (tests).
    pub(super) fn first_weight_grad(&self, grads: &B::Gradients) -> f64 {
        crate::kernels::test_util::grad_abs_sum(&self.conv.weight, grads)
    }
}
