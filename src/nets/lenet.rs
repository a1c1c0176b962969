//! LeNet++ of the center-loss paper (Wen et al., ECCV 2016; field notes §6):
//! conv5x5 32,32 - pool - 64,64 - pool - 128,128 - pool, PReLU, pad 2, then a
//! fully connected layer to D features (2 for plots) followed by PReLU, as in
//! the widely used PyTorch port.

use super::layers::{ChannelGroup, LayerRef, WeightTransform, conv, linear};
use crate::kernels::pool;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig, PaddingConfig2d};
use burn::prelude::*;

/// Builds a [`LeNetPP`].
#[derive(Config, Debug)]
pub struct LeNetPPConfig {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Feature dimension D.
    pub features: usize,
    /// Apply the final PReLU after fc (`feature_act = relu`).
    #[config(default = true)]
    pub final_act: bool,
    /// The six convolutions' output channels (fewer once pruned).
    #[config(default = "[32, 32, 64, 64, 128, 128]")]
    pub widths: [usize; 6],
}

/// One conv5x5 (pad 2) + per-channel PReLU.
#[derive(Module, Debug)]
struct ConvPRelu<B: Backend> {
    conv: Conv2d<B>,
    act: PRelu<B>,
}

impl<B: Backend> ConvPRelu<B> {
    fn new(cin: usize, cout: usize, device: &B::Device) -> Self {
        Self {
            conv: Conv2dConfig::new([cin, cout], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device),
            act: PReluConfig::new().with_num_parameters(cout).init(device),
        }
    }
    fn forward(
        &self,
        x: Tensor<B, 4>,
        t: &dyn WeightTransform<B>,
        at: LayerRef<'_>,
    ) -> Tensor<B, 4> {
        self.act.forward(conv(&self.conv, x, t, at))
    }
}

/// LeNet++ backbone.
#[derive(Module, Debug)]
pub struct LeNetPP<B: Backend> {
    convs: Vec<ConvPRelu<B>>,
    pool: MaxPool2d,
    fc: Linear<B>,
    act: PRelu<B>,
    final_act: bool,
}

impl LeNetPPConfig {
    /// Build on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> LeNetPP<B> {
        let mut cin = self.channels;
        let convs = self
            .widths
            .iter()
            .map(|&cout| {
                let layer = ConvPRelu::new(cin, cout, device);
                cin = cout;
                layer
            })
            .collect();
        let flat = self.widths[5] * (self.height / 8) * (self.width / 8);
        LeNetPP {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc: LinearConfig::new(flat, self.features).init(device),
            act: PReluConfig::new().init(device),
            final_act: self.final_act,
        }
    }
}

impl<B: Backend> LeNetPP<B> {
    /// # Shapes
    /// `[B, Ch, H, W]` -> `[B, D]`.
    pub fn forward_with(&self, images: Tensor<B, 4>, t: &dyn WeightTransform<B>) -> Tensor<B, 2> {
        let mut x = images;
        for (i, layer) in self.convs.iter().enumerate() {
            let name = format!("convs.{i}.conv");
            x = layer.forward(
                x,
                t,
                LayerRef {
                    name: &name,
                    first: i == 0,
                },
            );
            if i % 2 == 1 {
                x = pool::forward_module(&self.pool, x); // halves H and W after each pair
            }
            x = t.gate(&name, x);
        }
        let x: Tensor<B, 2> = x.flatten(1, 3); // [B, 128 * H/8 * W/8]
        let x = linear(
            &self.fc,
            x,
            t,
            LayerRef {
                name: "fc",
                first: false,
            },
        );
        if self.final_act {
            self.act.forward(x)
        } else {
            x // the PReLU's parameter stays in the record, unused
        }
    }

    /// Each conv's channels, with its per-channel PReLU as the norm-like
    /// layer over them (pruned with them), read by the next conv, the last
    /// by fc (one input per pixel of the H/8 x W/8 map).
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        let n = self.convs.len();
        let [flat, _] = self.fc.weight.dims();
        (0..n)
            .map(|i| {
                let c = self.convs[i].conv.weight.dims()[0];
                let next = if i + 1 < n {
                    (format!("convs.{}.conv", i + 1), 1)
                } else {
                    ("fc".to_string(), flat / c.max(1))
                };
                ChannelGroup::plain(
                    &format!("convs.{i}.conv"),
                    c,
                    &[&format!("convs.{i}.act")],
                    &[(&next.0, next.1)],
                )
            })
            .collect()
    }

    /// Multiply-accumulates of one image of `h x w` (see
    /// [`super::Backbone::macs`]).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        use super::layers::{conv_macs, linear_macs};
        let mut total = linear_macs(&self.fc);
        let (mut h, mut w) = (h, w);
        for (i, layer) in self.convs.iter().enumerate() {
            total += conv_macs(&layer.conv, h, w);
            if i % 2 == 1 {
                (h, w) = (h / 2, w / 2);
            }
        }
        total
    }
}

#[cfg(test)]
impl<B: burn::tensor::backend::AutodiffBackend> LeNetPP<B> {
    /// Sum of |gradient| of the first layer's weight (tests).
    pub(super) fn first_weight_grad(&self, grads: &B::Gradients) -> f64 {
        crate::kernels::test_util::grad_abs_sum(&self.convs[0].conv.weight, grads)
    }
}
