//! The trained model (a backbone, the optional feature BatchNorm, a head and
//! the center loss's centers) and how a run builds it.

use super::config::ValidTrainConfig;
use crate::backend::Cpu;
use crate::heads::{CenterLoss, Head, HeadOps};
use crate::nets::{Backbone, BatchNorm2d, Identity, NetSpec, WeightTransform};
use anyhow::{Context, Result, anyhow};
use burn::prelude::*;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};

/// A backbone and a head: images `[B, Ch, H, W]` -> features `[B, D]` -> logits `[B, C]`.
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    /// Backbone.
    pub net: Backbone<B>,
    /// BatchNorm1d between backbone and head (`feature_act = bn`).
    pub feature_bn: Option<BatchNorm2d<B>>,
    /// Classification head.
    pub head: Head<B>,
    /// Center loss (auxiliary term), for `--head center`.
    pub center: Option<CenterLoss<B>>,
}

impl<B: Backend> Model<B> {
    /// The features the head sees, `[B, D]`.
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.features_with(images, &Identity)
    }

    /// [`Self::features`] with every convolution and linear layer of the
    /// backbone reading its weights through `transform`.
    pub fn features_with(
        &self,
        images: Tensor<B, 4>,
        transform: &dyn WeightTransform<B>,
    ) -> Tensor<B, 2> {
        let x = self.net.forward_with(images, transform);
        match &self.feature_bn {
            Some(bn) => bn.forward_features(x),
            None => x,
        }
    }

    /// Features `[B, D]` and prediction logits `[B, C]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        self.forward_with(images, &Identity)
    }

    /// [`Self::forward`] through `transform` (see [`Self::features_with`]).
    pub fn forward_with(
        &self,
        images: Tensor<B, 4>,
        transform: &dyn WeightTransform<B>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let features = self.features_with(images, transform);
        let logits = self.head.logits(features.clone());
        (features, logits)
    }
}

/// The model a run of `cfg` trains, on images of `spec`, with `classes`
/// classes, freshly initialised (the backend's seed is set by the caller).
pub(crate) fn build<B: Backend>(
    cfg: &ValidTrainConfig,
    spec: &NetSpec,
    classes: usize,
    device: &B::Device,
) -> Result<Model<B>> {
    let raw = &cfg.raw;
    let d = spec.feature_dim();
    let head = cfg.head.init::<B>(d, classes, device).with_context(|| {
        let from = if cfg.net == crate::nets::NetKind::Lenet {
            ", set by --feature-dim"
        } else {
            ""
        };
        format!(
            "--head {} on net {} (D = {d}{from}) and {} (C = {classes})",
            raw.head, raw.net, raw.dataset
        )
    })?;
    let center = cfg
        .head
        .center()?
        .map(|(w, lr)| CenterLoss::new(d, classes, w, lr, device));
    Ok(Model {
        net: spec.init::<B>(device),
        feature_bn: spec.feature_bn(device),
        head,
        center,
    })
}

/// [`build`] for a training run of seed `seed` on any backend: the weights
/// are drawn by the CPU backend, in the order of the record (the order of
/// the fields), and then moved to `device`. So a run starts from the same
/// weights on the CPU, a CUDA GPU or a Vulkan device (burn's GPU runtimes
/// have random generators of their own, and its parameters are drawn lazily,
/// at first use).
pub(crate) fn build_seeded<B: Backend>(
    cfg: &ValidTrainConfig,
    spec: &NetSpec,
    classes: usize,
    seed: u64,
    device: &B::Device,
) -> Result<Model<B>> {
    B::seed(device, seed);
    let cpu_device = Default::default();
    Cpu::seed(&cpu_device, seed);
    let on_cpu = build::<Cpu>(cfg, spec, classes, &cpu_device)?;
    let rec = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = rec
        .record(on_cpu.into_record(), ())
        .map_err(|e| anyhow!("cannot encode the initial model: {e}"))?;
    let record = rec
        .load(bytes, device)
        .map_err(|e| anyhow!("cannot move the initial model to the device: {e}"))?;
    Ok(build::<B>(cfg, spec, classes, device)?.load_record(record))
}
