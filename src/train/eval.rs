//! Passes over a set without training: batches as tensors, the evaluation
//! (loss, accuracy, features for the probe) and the feature export.

use super::Model;
use super::export::{write_npy_f32, write_npy_i64};
use crate::data::{self, Augment, ImageSet, Normalizer};
use crate::heads::{HeadOps, cross_entropy};
use crate::nets::WeightTransform;
use crate::run_dir;
use anyhow::{Result, anyhow};
use burn::prelude::*;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Images `idx` of `set` as tensors `[B, Ch, H, W]` and labels `[B]`.
pub(crate) fn batch_tensors<B: Backend>(
    set: &ImageSet,
    idx: &[usize],
    norm: &Normalizer,
    augment: Option<(&Augment, &mut ChaCha8Rng)>,
    buf: &mut Vec<f32>,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let labels = data::fill_batch(set, idx, norm, augment, buf);
    let shape = [idx.len(), set.channels, set.height, set.width];
    let x = Tensor::from_data(TensorData::new(std::mem::take(buf), shape), device);
    let y = Tensor::from_data(TensorData::new(labels, [idx.len()]), device);
    (x, y)
}

/// Tensor values as f32 on the host; an error (never empty or zero
/// values) when the device cannot give them back.
pub(crate) fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| anyhow!("cannot read a tensor back from the device: {e:?}"))
}

/// The number of rows of `logits` whose argmax is the label.
pub(crate) fn count_correct<B: Backend>(logits: Tensor<B, 2>, y: Tensor<B, 1, Int>) -> i64 {
    let [b, _] = logits.dims();
    logits
        .argmax(1)
        .reshape([b])
        .equal(y)
        .int()
        .sum()
        .into_scalar()
        .elem()
}

/// What one pass over a set gives: mean loss, accuracy, and the
/// penultimate features `[N, D]` with their labels (for the probe).
pub(crate) struct Evaluation {
    pub loss: f64,
    pub acc: f64,
    pub features: Vec<f32>,
    pub labels: Vec<usize>,
}

/// Evaluate `model` on the images `indices` of `set`.
pub(crate) fn evaluate<B: Backend>(
    model: &Model<B>,
    transform: &dyn WeightTransform<B>,
    set: &ImageSet,
    indices: &[usize],
    norm: &Normalizer,
    eval_batch: usize,
    device: &B::Device,
) -> Result<Evaluation> {
    let (mut loss_sum, mut correct) = (0.0f64, 0i64);
    let mut buf = Vec::new();
    let mut features = Vec::new();
    let mut labels = Vec::with_capacity(indices.len());
    for idx in indices.chunks(eval_batch) {
        let (x, y) = batch_tensors::<B>(set, idx, norm, None, &mut buf, device);
        let (f, logits) = model.forward_with(x, transform);
        let loss: f32 = cross_entropy(logits.clone(), y.clone())
            .into_scalar()
            .elem();
        loss_sum += loss as f64 * idx.len() as f64;
        correct += count_correct(logits, y);
        features.extend(host_f32(f)?);
        labels.extend(idx.iter().map(|&i| set.labels[i] as usize));
    }
    let n = indices.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / n,
        acc: correct as f64 / n,
        features,
        labels,
    })
}

/// Write the test-set penultimate features, labels and the head's weights
/// as NPY (the run directory's `features.npy`, `labels.npy`,
/// `class_weights.npy`, and `bias.npy` / `head_params.npy` where the head
/// has them).
pub(crate) fn export_features<B: Backend>(
    model: &Model<B>,
    transform: &dyn WeightTransform<B>,
    set: &ImageSet,
    norm: &Normalizer,
    eval_batch: usize,
    device: &B::Device,
    out: &Path,
) -> Result<()> {
    let mut feats = Vec::new();
    let mut labels = Vec::with_capacity(set.n);
    let mut buf = Vec::new();
    let order: Vec<usize> = (0..set.n).collect();
    let mut d = 0;
    for idx in order.chunks(eval_batch) {
        let batch_labels = data::fill_batch(set, idx, norm, None, &mut buf);
        let shape = [idx.len(), set.channels, set.height, set.width];
        let x = Tensor::<B, 4>::from_data(TensorData::new(std::mem::take(&mut buf), shape), device);
        let f = model.features_with(x, transform);
        d = f.dims()[1];
        feats.extend(host_f32(f)?);
        labels.extend(batch_labels);
    }
    write_npy_f32(&out.join(run_dir::FEATURES), feats, set.n, d)?;
    write_npy_i64(&out.join(run_dir::LABELS), labels)?;
    let w = model.head.class_weights();
    let [c, dw] = w.dims();
    write_npy_f32(&out.join(run_dir::CLASS_WEIGHTS), host_f32(w)?, c, dw)?;
    if let Some(b) = model.head.bias() {
        let n = b.dims()[0];
        write_npy_f32(&out.join(run_dir::BIAS), host_f32(b)?, 1, n)?;
    }
    if let Some(p) = model.head.derived_params() {
        let [r, dp] = p.dims();
        write_npy_f32(&out.join(run_dir::HEAD_PARAMS), host_f32(p)?, r, dp)?;
    }
    Ok(())
}
