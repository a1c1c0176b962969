//! A trained run loaded for post-training work (`quantize`, `prune`):
//! its configuration, data and model from the last checkpoint, and the
//! test measurement every such command starts from.

use super::eval::evaluate;
use super::probe::probe_line;
use super::{Model, Prepared, ValidTrainConfig};
use crate::backend::Cpu;
use crate::data::{ImageSet, Normalizer};
use crate::nets::Identity;
use crate::run_dir::{self, Checkpoint, RunFiles};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::Path;

/// The float baseline and the measured model, as `results.json` holds them.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// Test accuracy (fraction).
    pub test_acc: f64,
    /// Mean test loss.
    pub test_loss: f64,
    /// Final mean angle(w_c, class mean), degrees (None: probe undefined).
    pub angle_w_mean_deg: Option<f64>,
    /// NC3 (None: probe undefined).
    pub nc3: Option<f64>,
}

/// The loaded run: its configuration, data, model and baseline.
pub struct Loaded {
    /// The run's files.
    pub files: RunFiles,
    /// Its validated configuration.
    pub cfg: ValidTrainConfig,
    /// Its test set.
    pub test: ImageSet,
    /// Its normaliser.
    pub norm: Normalizer,
    /// The trained model (from `checkpoint.bin`).
    pub model: Model<Cpu>,
    /// Classes.
    pub classes: usize,
}

/// Load the run in `dir` with its model (the last checkpoint) and data.
pub fn load_run(dir: &Path) -> Result<Loaded> {
    load_run_prepared(dir).map(|(l, _)| l)
}

/// [`load_run`], and what the run trains on (its training set, its
/// backbone's spec).
pub fn load_run_prepared(dir: &Path) -> Result<(Loaded, Prepared)> {
    let Some(files) = RunFiles::read(dir)? else {
        bail!(
            "{}: not a run directory (no {})",
            dir.display(),
            run_dir::CONFIG
        );
    };
    let ck_path = dir.join(run_dir::CHECKPOINT);
    if !ck_path.exists() {
        bail!(
            "{}: the run has no model yet (no {}: train it first)",
            dir.display(),
            run_dir::CHECKPOINT
        );
    }
    let cfg = files
        .config
        .check()
        .with_context(|| format!("{}", dir.join(run_dir::CONFIG).display()))?;
    let prepared = super::prepare(&cfg)?;
    let device = Default::default();
    let classes = prepared.train_set.num_classes;
    let model = super::model::build::<Cpu>(&cfg, &prepared.spec, classes, &device)?;
    let ck = Checkpoint::load(&ck_path)?;
    let model = super::load_model(ck, &ck_path, &cfg.raw, model, &device)?;
    let loaded = Loaded {
        files,
        cfg,
        test: prepared.test_set.clone(),
        norm: prepared.norm.clone(),
        model,
        classes,
    };
    Ok((loaded, prepared))
}

/// Test accuracy, loss and geometry of `model`.
pub fn measure(l: &Loaded, model: &Model<Cpu>) -> Result<Measured> {
    let all: Vec<usize> = (0..l.test.n).collect();
    let device = Default::default();
    let ev = evaluate(
        model,
        &Identity,
        &l.test,
        &all,
        &l.norm,
        l.cfg.raw.eval_batch,
        &device,
    )?;
    let p = probe_line(model, 0, "test", &ev, l.classes)?;
    let a = p.analysis();
    Ok(Measured {
        test_acc: ev.acc,
        test_loss: ev.loss,
        angle_w_mean_deg: a.map(|a| a.mean_angle_w_mean_deg),
        nc3: a.map(|a| a.nc.nc3),
    })
}
