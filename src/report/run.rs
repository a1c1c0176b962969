//! A run as the report reads it back: its files (`crate::run_dir`), the
//! stability and convergence measures, the conditions of its final weights,
//! and typed reads of its probe.

use crate::geometry::Matrix;
use crate::geometry::analysis::Analysis;
use crate::heads::HeadKind;
use crate::npy::MatrixReader;
use crate::run_dir::{self, EpochMetrics, ProbeLine, RunFiles, test_accs};
use crate::statistics::{Convergence, Trend, convergence};
use crate::study::stability::{RunStability, measure};
use crate::train::TrainConfig;
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Epochs of the tail (convergence test and tail stability) of runs
/// trained without `plateau_window`.
pub const TAIL_EPOCHS: usize = 5;

/// The measured symmetry conditions of a run's final class weights
/// (row-normalised first for cosine heads, whose logits only see `w/|w|`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Conditions {
    /// `max_c ||w_c| - 1|`.
    pub unit_norm_dev: f64,
    /// `|(1/C) sum_c w_c|` (0: the weights sum to zero).
    pub mean_weight_norm: f64,
    /// Energy outside the top-2 singular directions (0: coplanar).
    pub coplanarity: f64,
}

/// One run as read back from its directory.
#[derive(Debug, Clone)]
pub struct RunData {
    /// Directory name.
    pub name: String,
    /// The study variant it belongs to.
    pub variant: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: TrainConfig,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// Per-epoch geometry of the test split.
    pub probe: Vec<ProbeLine>,
    /// The divergence message, if it diverged.
    pub diverged: Option<String>,
    /// The failure message, if the study recorded it as failed.
    pub failed: Option<String>,
    /// Stability measures.
    pub stability: Option<RunStability>,
    /// The convergence test on the last epochs (None: fewer epochs than the window).
    pub convergence: Option<Convergence>,
    /// Conditions of the final weights (None: no `class_weights.npy`).
    pub conditions: Option<Conditions>,
}

impl RunData {
    /// Converged by the stated test, and not diverged.
    pub fn converged(&self) -> bool {
        self.diverged.is_none() && self.convergence.is_some_and(|c| c.converged())
    }

    /// The window of the convergence test and tail stability.
    pub fn tail_window(&self) -> usize {
        if self.config.plateau_window >= 3 {
            self.config.plateau_window
        } else {
            TAIL_EPOCHS
        }
    }

    /// "converged at epoch N", "not converged by epoch N (rising)", ...
    pub fn convergence_words(&self) -> String {
        let n = self.history.len();
        if self.diverged.is_some() {
            return format!("diverged (after {n} epochs)");
        }
        if let Some(f) = &self.failed {
            return format!("failed after {n} epochs ({f})");
        }
        match self.convergence {
            Some(c) if c.converged() => match self.config.plateau(&test_accs(&self.history)) {
                Some((k, _)) if k < n => format!("converged by epoch {k} (+{} annealing)", n - k),
                Some((k, _)) => format!("converged by epoch {k}"),
                None => format!("converged by epoch {n}"),
            },
            Some(c) => format!(
                "not converged by epoch {n} ({}, {:+.2} pts/epoch)",
                match c.trend {
                    Trend::Rising => "rising",
                    _ => "falling",
                },
                100.0 * c.slope
            ),
            None => format!(
                "not converged by epoch {n} (fewer than {} epochs)",
                self.tail_window()
            ),
        }
    }
}

/// Whether the head's logits see only `w / |w|` (its file's description).
fn cosine_head(head: &str) -> bool {
    HeadKind::parse(head).is_some_and(|k| k.desc().cosine)
}

/// Whether the head's class weights are learned (the symmetrical layer
/// learns its plane; the polytope heads are fixed).
pub fn learnable(head: &str) -> bool {
    HeadKind::parse(head).is_none_or(|k| k.desc().learned)
}

/// The conditions of the run's final weights: `None` without
/// `class_weights.npy` or where they are undefined (all-zero weights); an
/// unreadable file is an error naming it.
fn conditions(dir: &Path, head: &str) -> Result<Option<Conditions>> {
    let path = dir.join(run_dir::CLASS_WEIGHTS);
    if !path.exists() {
        return Ok(None);
    }
    let (w, c, d) = MatrixReader::open(&path, "class weights")?.read_all()?;
    let mut rows: Vec<Vec<f64>> = w.chunks(d.max(1)).take(c).map(|r| r.to_vec()).collect();
    if cosine_head(head) {
        for r in &mut rows {
            let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            if n > 0.0 {
                r.iter_mut().for_each(|v| *v /= n);
            }
        }
    }
    let m = Matrix::from_rows(&rows)?;
    Ok(crate::geometry::collapse::symmetry(&m)
        .ok()
        .map(|s| Conditions {
            unit_norm_dev: s.unit_norm_dev,
            mean_weight_norm: s.mean_weight_norm,
            coplanarity: s.coplanarity,
        }))
}

/// Read a run directory (None when it has no config yet). `variant` names
/// its study variant (None: the head, with the feature variant if not relu).
pub fn load_run(dir: &Path, variant: Option<&str>) -> Result<Option<RunData>> {
    let Some(files) = RunFiles::read(dir)? else {
        return Ok(None);
    };
    let name = files.name();
    let RunFiles {
        config,
        history,
        probe,
        diverged,
        failed,
        ..
    } = files;
    let probe = probe.into_iter().filter(|p| p.split == "test").collect();
    let variant = variant.map(String::from).unwrap_or_else(|| {
        if config.feature_act == "relu" {
            config.head.clone()
        } else {
            format!("{}-{}", config.head, config.feature_act)
        }
    });
    let mut run = RunData {
        name,
        variant,
        dir: dir.to_path_buf(),
        conditions: conditions(dir, &config.head)?,
        config,
        history,
        probe,
        stability: None,
        convergence: None,
        diverged,
        failed,
    };
    let window = run.tail_window();
    run.stability = measure(&run.history, window, run.diverged.is_some());
    // With `plateau_window`: the test where the trainer found the plateau
    // (before any annealing epochs); else on the last epochs.
    let accs = test_accs(&run.history);
    run.convergence = match run.config.plateau(&accs) {
        Some((_, c)) => Some(c),
        None => convergence(&accs, window, run.config.plateau_slope),
    };
    Ok(Some(run))
}

/// A quantity of the probe's analysis.
pub type ProbeQuantity = fn(&Analysis) -> Option<f64>;

/// The geometry quantities followed over training (test split): key,
/// value, label.
pub const TRAJECTORIES: [(&str, ProbeQuantity, &str); 6] = [
    (
        "angle_w_mean",
        |a| Some(a.mean_angle_w_mean_deg),
        "mean angle(w_c, class mean) [deg]",
    ),
    (
        "angle_w_softmax_center",
        |a| Some(a.mean_angle_w_softmax_center_deg),
        "mean angle(w_c, softmax center) [deg]",
    ),
    ("nc1", |a| Some(a.nc.nc1), "NC1"),
    ("nc3", |a| Some(a.nc.nc3), "NC3"),
    (
        "compactness",
        |a| a.compactness_mean_deg,
        "compactness [deg]",
    ),
    ("separation", |a| Some(a.separation_deg), "separation [deg]"),
];

/// The final mean angle(w_c, class mean) of a run (its last test probe).
pub fn final_angle(r: &RunData) -> Option<f64> {
    final_probe(r, TRAJECTORIES[0].1)
}

/// `q` of a run's last test probe (None: no probe, or a skipped one).
pub fn final_probe(r: &RunData, q: ProbeQuantity) -> Option<f64> {
    r.probe.last().and_then(|p| p.analysis()).and_then(q)
}

/// `q` of a run's test probe after epoch `e + 1`.
pub fn probe_at(r: &RunData, e: usize, q: ProbeQuantity) -> Option<f64> {
    r.probe.get(e).and_then(|p| p.analysis()).and_then(q)
}
