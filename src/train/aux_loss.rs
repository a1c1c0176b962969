//! Auxiliary loss terms: each adds a term to the head's cross-entropy at
//! every training step and may act after the optimiser step. The center
//! loss (Wen et al. 2016) is the first; the compressibility regulariser
//! (field notes §8.1) plugs in the same way.

use super::Model;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// A term added to the training loss.
pub trait AuxLoss<B: AutodiffBackend> {
    /// Its name, in messages.
    fn name(&self) -> &'static str;

    /// The term for this batch (shape `[1]`), from the model and the
    /// features the head saw with their labels.
    fn loss(
        &self,
        model: &Model<B>,
        features: &Tensor<B, 2>,
        labels: &Tensor<B, 1, Int>,
    ) -> Tensor<B, 1>;

    /// The `metrics.jsonl` key under which the run logs the term's mean
    /// over an epoch (default: not logged).
    fn log_key(&self) -> Option<&'static str> {
        None
    }

    /// After the optimiser step of this batch (default: nothing).
    fn after_step(
        &self,
        model: Model<B>,
        _features: Tensor<B, 2>,
        _labels: Tensor<B, 1, Int>,
    ) -> Model<B> {
        model
    }
}

/// The center loss of `--head center`: `lambda/2 mean |x_i - c_{y_i}|^2`,
/// whose centers move after each step with their own rate (the model's
/// `center`, so they are checkpointed with it).
pub struct CenterTerm;

impl<B: AutodiffBackend> AuxLoss<B> for CenterTerm {
    fn name(&self) -> &'static str {
        "center loss"
    }

    fn loss(
        &self,
        model: &Model<B>,
        features: &Tensor<B, 2>,
        labels: &Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        match &model.center {
            Some(c) => c.loss(features.clone(), labels.clone()),
            None => Tensor::zeros([1], &features.device()),
        }
    }

    fn after_step(
        &self,
        mut model: Model<B>,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Model<B> {
        if let Some(c) = model.center.take() {
            model.center = Some(c.update(features, labels));
        }
        model
    }
}

/// The auxiliary terms of a run of `cfg` whose model is `model`: the
/// center loss of `--head center`, the weight regulariser.
pub fn for_run<B: AutodiffBackend>(
    cfg: &super::ValidTrainConfig,
    model: &Model<B>,
) -> Vec<Box<dyn AuxLoss<B>>> {
    let mut terms: Vec<Box<dyn AuxLoss<B>>> = vec![];
    if model.center.is_some() {
        terms.push(Box::new(CenterTerm));
    }
    let (kind, weight) = cfg.regularizer;
    if kind != super::regularizer::Regularizer::None {
        terms.push(Box::new(super::regularizer::RegTerm { kind, weight }));
    }
    terms
}
