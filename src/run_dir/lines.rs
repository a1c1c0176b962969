//! The per-epoch lines of a run: `metrics.jsonl` ([`EpochMetrics`]) and
//! `probe.jsonl` ([`ProbeLine`]), and the JSONL reading and writing.

use crate::geometry::analysis::Analysis;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One line of `metrics.jsonl` (`Default`: zeros and no optional field,
/// to fill with `..Default::default()`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Learning rate at the last step of the epoch.
    pub lr: f64,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Training accuracy (fraction, from the prediction logits, i.e. without
    /// a margin head's target penalty).
    pub train_acc: f64,
    /// Mean test loss.
    pub test_loss: f64,
    /// Test accuracy (fraction).
    pub test_acc: f64,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Mean over the epoch's steps of the regulariser's term (`reg_weight`
    /// times its sum over layers); only with a regulariser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reg_loss: Option<f64>,
    /// Share of the backbone's conv/linear weights below 1 % of their
    /// layer's largest magnitude, after the epoch; only with a regulariser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparsity: Option<f64>,
    /// With a regulariser: entropy (bits per weight) of the other weights,
    /// each layer's on 255 bins over `[-M, M]`. In a binary run: the
    /// entropy (bits) of the binary weights' signs, per layer, averaged
    /// over the binary layers (1 bit: as many +1 as -1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_entropy: Option<f64>,
    /// Binary runs: ReCU's tau during the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
    /// Binary runs: share of the binary layers' standardised weights beyond
    /// ReCU's clamp, |w1| > Q(tau) (the "dead" tails; `crate::binary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_weight_fraction: Option<f64>,
    /// Binary runs: share of binary weights whose sign did not change
    /// during the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_sign_fraction: Option<f64>,
    /// Binary runs: mean |w2 - a sign(w2)| of the weights as binarised
    /// (standardised, clamped for recu), `a` = mean |w2| per output channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant_error: Option<f64>,
}

/// The test accuracy of every epoch of `history`.
pub fn test_accs(history: &[EpochMetrics]) -> Vec<f64> {
    history.iter().map(|m| m.test_acc).collect()
}

/// One line of `probe.jsonl`: the geometry of the head against the
/// features of one split after one epoch (field notes §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeLine {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// "test" (the whole test set) or "train" (the fixed training subset).
    pub split: String,
    /// The full analysis (per-class angles, NC1-NC4, symmetry, separation),
    /// or why there is none.
    pub analysis: ProbeAnalysis,
}

/// What the probe measured: the analysis, or the reason it is undefined
/// (e.g. a class without samples, every class mean equal). In JSON, an
/// analysis object, or `{"skipped": "<reason>"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProbeAnalysis {
    /// Undefined, with the reason.
    Skipped {
        /// Why.
        skipped: String,
    },
    /// The analysis of `symfeat analyze`.
    Measured(Box<Analysis>),
}

impl ProbeLine {
    /// The analysis, if the probe measured one.
    pub fn analysis(&self) -> Option<&Analysis> {
        match &self.analysis {
            ProbeAnalysis::Measured(a) => Some(a),
            ProbeAnalysis::Skipped { .. } => None,
        }
    }
}

/// Read a JSONL file of `T` (empty when the file does not exist); an error
/// names the file and the line.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: invalid JSON", path.display(), i + 1))
        })
        .collect()
}

/// Write `rows` as JSONL, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for m in rows {
        text.push_str(&serde_json::to_string(m)?);
        text.push('\n');
    }
    crate::atomic::write(path, text.as_bytes())?;
    Ok(())
}
