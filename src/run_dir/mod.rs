//! The files of a run directory and of a study directory, typed: their
//! names, the per-epoch lines, the checkpoint format, the diverged marker,
//! a run's status, and the lock of a directory being written.
//!
//! Training writes these files, the study reads their status and the
//! report reads them back; all three name them only through this module.
//! A leaf: it knows the training configuration (what `config.toml` holds)
//! and the geometry analysis (what a probe line holds), nothing of burn.

pub mod checkpoint;
pub mod external;
mod lines;
mod lock;

pub use checkpoint::{Checkpoint, CheckpointState};
pub use lines::{EpochMetrics, ProbeAnalysis, ProbeLine, read_jsonl, test_accs, write_jsonl};
pub use lock::{DirLock, LOCK, Locked, holder, lock, lock_waiting};

use crate::train::TrainConfig;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The resolved configuration (what `--resume` reads).
pub const CONFIG: &str = "config.toml";
/// Per-epoch metrics, [`EpochMetrics`] lines.
pub const METRICS: &str = "metrics.jsonl";
/// Everything `--resume` needs ([`Checkpoint`]).
pub const CHECKPOINT: &str = "checkpoint.bin";
/// The final weights.
pub const WEIGHTS: &str = "model.safetensors";
/// Per-epoch geometry, [`ProbeLine`] lines.
pub const PROBE: &str = "probe.jsonl";
/// Test-set features the head sees, `[N, D]` f32 (`export_features`).
pub const FEATURES: &str = "features.npy";
/// Their labels, `[N]` i64.
pub const LABELS: &str = "labels.npy";
/// The head's class weights, `[C, D]` f32.
pub const CLASS_WEIGHTS: &str = "class_weights.npy";
/// The head's bias, `[1, C]` f32 (linear heads).
pub const BIAS: &str = "bias.npy";
/// Parameters a head derives (e.g. the symmetrical layer's plane).
pub const HEAD_PARAMS: &str = "head_params.npy";
/// The marker of a run that diverged: `{"error": "<message>"}`.
pub const DIVERGED: &str = "diverged.json";
/// The marker of a study run that failed (not diverged): `{"error": "<message>"}`.
pub const FAILED: &str = "failed.json";
/// A binary run's model with its binary layers' signs packed 64 per word
/// (`crate::binary::packed`).
pub const PACKED: &str = "packed.safetensors";

/// Every file a run writes (atomically), for the clean-up of the
/// temporary files an interrupted write leaves.
pub const RUN_FILES: [&str; 13] = [
    CONFIG,
    METRICS,
    CHECKPOINT,
    WEIGHTS,
    PROBE,
    FEATURES,
    LABELS,
    CLASS_WEIGHTS,
    BIAS,
    HEAD_PARAMS,
    DIVERGED,
    FAILED,
    PACKED,
];

/// A study's configuration, as written into its directory.
pub const STUDY_FILE: &str = "study.toml";
/// The study's run directories live in `STUDY/runs/`.
pub const STUDY_RUNS: &str = "runs";
/// The report's summary (JSON).
pub const SUMMARY_JSON: &str = "summary.json";
/// The report's summary (Markdown).
pub const SUMMARY_MD: &str = "summary.md";
/// The report.
pub const REPORT_HTML: &str = "report.html";
/// The report's figures (`STUDY/figures/<stem>.png|svg`).
pub const FIGURES: &str = "figures";

/// Write a run's end marker (`diverged.json`, `failed.json`): the error
/// message as `{"error": ...}`, atomically.
pub fn write_marker(dir: &Path, marker: &str, message: &str) -> Result<()> {
    crate::atomic::write(
        &dir.join(marker),
        serde_json::json!({ "error": message })
            .to_string()
            .as_bytes(),
    )?;
    Ok(())
}

/// The message of a run's end marker, if it has one (a marker that is not
/// the JSON object [`write_marker`] writes is quoted as it is).
pub fn read_marker(dir: &Path, marker: &str) -> Option<String> {
    let path = dir.join(marker);
    if !path.exists() {
        return None;
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return Some(format!("{} is unreadable: {e}", path.display())),
    };
    #[derive(serde::Deserialize)]
    struct Marker {
        error: String,
    }
    Some(
        serde_json::from_str::<Marker>(&text)
            .map(|m| m.error)
            .unwrap_or(text),
    )
}

/// A run directory's files, read back.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// Its directory.
    pub dir: PathBuf,
    /// `config.toml`.
    pub config: TrainConfig,
    /// `metrics.jsonl`.
    pub history: Vec<EpochMetrics>,
    /// `probe.jsonl`, every split.
    pub probe: Vec<ProbeLine>,
    /// The divergence message (`diverged.json`).
    pub diverged: Option<String>,
    /// The failure message of a study run (`failed.json`).
    pub failed: Option<String>,
}

impl RunFiles {
    /// Read the run in `dir`; `None` when it has no `config.toml` yet. An
    /// unreadable file is an error naming it (and the line of a JSONL file).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let cfg = dir.join(CONFIG);
        if !cfg.exists() {
            return Ok(None);
        }
        Ok(Some(Self {
            dir: dir.to_path_buf(),
            config: TrainConfig::from_file(&cfg)?,
            history: read_jsonl(&dir.join(METRICS))?,
            probe: read_jsonl(&dir.join(PROBE))?,
            diverged: read_marker(dir, DIVERGED),
            failed: read_marker(dir, FAILED),
        }))
    }

    /// The directory's name.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Where a run of a study stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// Nothing there yet.
    New,
    /// A checkpoint with this many of the epochs.
    Partial(usize),
    /// A checkpoint that cannot be read (the error): never deleted.
    Unreadable(String),
    /// Every epoch (or its plateau and annealing) done and the final files written.
    Finished,
    /// Stopped with a non-finite loss (see `diverged.json`).
    Diverged,
    /// Stopped with another error (see `failed.json`); a later study retries it.
    Failed,
}

/// Where the run in `dir` stands, for a run configured as `config` (its
/// epochs, and its plateau test when `plateau_window` is on).
pub fn run_status(dir: &Path, config: &TrainConfig) -> RunStatus {
    if dir.join(DIVERGED).exists() {
        return RunStatus::Diverged;
    }
    if dir.join(FAILED).exists() {
        return RunStatus::Failed;
    }
    let ck = dir.join(CHECKPOINT);
    if !ck.exists() {
        return RunStatus::New;
    }
    match Checkpoint::load(&ck) {
        Ok(c)
            if config.complete(&test_accs(&c.state.history))
                && dir.join(WEIGHTS).exists()
                && dir.join(CLASS_WEIGHTS).exists() =>
        {
            RunStatus::Finished
        }
        Ok(c) => RunStatus::Partial(c.state.epochs_done),
        Err(e) => RunStatus::Unreadable(format!("{e:#}")),
    }
}

/// The run directories of a study (`STUDY/runs/*/`), sorted.
pub fn study_run_dirs(study: &Path) -> Result<Vec<PathBuf>> {
    use anyhow::Context;
    let runs = study.join(STUDY_RUNS);
    let mut dirs: Vec<PathBuf> = vec![];
    for e in std::fs::read_dir(&runs).with_context(|| {
        format!(
            "{} has no runs/ directory and no config.toml: neither a study nor a run directory",
            study.display()
        )
    })? {
        let p = e
            .with_context(|| format!("cannot list {}", runs.display()))?
            .path();
        if p.is_dir() {
            dirs.push(p);
        }
    }
    dirs.sort();
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_a_foreign_marker_is_quoted() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_marker(d.path(), DIVERGED), None);
        write_marker(d.path(), DIVERGED, "training diverged: \"x\"").unwrap();
        assert_eq!(
            read_marker(d.path(), DIVERGED).as_deref(),
            Some("training diverged: \"x\"")
        );
        std::fs::write(d.path().join(FAILED), "plain words").unwrap();
        assert_eq!(
            read_marker(d.path(), FAILED).as_deref(),
            Some("plain words")
        );
        assert_eq!(
            run_status(d.path(), &TrainConfig::default()),
            RunStatus::Diverged
        );
    }

    #[test]
    fn a_probe_line_reads_back_typed_or_skipped() {
        let skipped =
            r#"{"epoch":1,"split":"test","analysis":{"skipped":"a class has no sample"}}"#;
        let p: ProbeLine = serde_json::from_str(skipped).unwrap();
        assert!(p.analysis().is_none());
        assert_eq!(serde_json::to_string(&p).unwrap(), skipped);
        let bad = r#"{"epoch":1,"split":"test","analysis":{"mean_angle_w_mean_deg":3}}"#;
        assert!(serde_json::from_str::<ProbeLine>(bad).is_err());
    }

    /// Review of #15: serde_json writes a NaN as `null`; a probe line (and
    /// so a checkpoint) with an undefined angle must read back, as NaN.
    #[test]
    fn a_probe_line_with_a_nan_reads_back() {
        let mut a = crate::analyze::analyze_arrays(
            &[1.0, 0.1, 0.9, 0.0, 0.1, 1.0, 0.0, 0.9],
            &[0, 0, 1, 1],
            &[1.0, 0.0, 0.0, 1.0],
            2,
            None,
            Some(16.0),
        )
        .unwrap();
        a.classes[0].angle_w_mean_deg = f64::NAN;
        a.nc.nc1 = f64::NAN;
        let line = ProbeLine {
            epoch: 1,
            split: "test".into(),
            analysis: ProbeAnalysis::Measured(Box::new(a)),
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.contains("\"angle_w_mean_deg\":null"), "{text}");
        let back: ProbeLine = serde_json::from_str(&text).unwrap();
        let b = back.analysis().unwrap();
        assert!(b.classes[0].angle_w_mean_deg.is_nan() && b.nc.nc1.is_nan());
        assert_eq!(b.classes[1], line.analysis().unwrap().classes[1]);
    }
}
