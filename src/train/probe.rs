//! The probe: after each epoch, the geometry of the head against the
//! features of the test set and of a fixed training subset (field notes
//! §4), as `probe.jsonl` lines.

use super::Model;
use super::eval::{Evaluation, host_f32};
use crate::heads::HeadOps;
use crate::run_dir::{ProbeAnalysis, ProbeLine};
use anyhow::Result;
use burn::prelude::*;

/// The probe line of one split after one epoch.
///
/// Degenerate features (e.g. every class mean equal) make the analysis
/// undefined, which is recorded as `skipped` with the reason and reported
/// on stderr: it is a measurement and must not stop the training. Only a
/// failed read of the head's weights from the device is an error.
pub(crate) fn probe_line<B: Backend>(
    model: &Model<B>,
    epoch: usize,
    split: &str,
    ev: &Evaluation,
    classes: usize,
) -> Result<ProbeLine> {
    let weights = host_f32(model.head.class_weights())?;
    let bias = model.head.bias().map(host_f32).transpose()?;
    let seen = ev
        .labels
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let analysis = if seen < classes {
        // A class without samples (tiny subsets): no class mean, no analysis.
        ProbeAnalysis::Skipped {
            skipped: "a class has no sample in this split".into(),
        }
    } else {
        match crate::analyze::analyze_arrays(
            &ev.features,
            &ev.labels,
            &weights,
            classes,
            bias.as_deref(),
            model.head.scale(),
        ) {
            Ok(a) => ProbeAnalysis::Measured(Box::new(a)),
            Err(e) => {
                eprintln!("warning: probe at epoch {epoch} ({split}) skipped: {e:#}");
                ProbeAnalysis::Skipped {
                    skipped: format!("analysis undefined: {e:#}"),
                }
            }
        }
    };
    Ok(ProbeLine {
        epoch,
        split: split.to_string(),
        analysis,
    })
}
