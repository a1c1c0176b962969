//! A run trained outside symfeat (a PyTorch loop, through the Python
//! package's `Probe`), written in the run-directory format so that
//! `symfeat report DIR` reads it as it reads a `symfeat train` run.
//!
//! What the directory holds: `config.toml` (a [`TrainConfig`]: the head and
//! its parameters, and whatever of the training the user stated; the other
//! fields keep symfeat's defaults), `probe.jsonl` (one [`ProbeLine`] per
//! epoch and split), `metrics.jsonl` (one [`EpochMetrics`] per epoch) and
//! `class_weights.npy` (the last test probe's weights, which the report's
//! symmetry conditions read). Every write replaces its file atomically; the
//! directory is locked while the run is open.

use super::{
    CLASS_WEIGHTS, CONFIG, DirLock, EpochMetrics, METRICS, PROBE, ProbeLine, lock, read_jsonl,
    write_jsonl,
};
use crate::train::TrainConfig;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// An open run directory of a run trained elsewhere.
#[derive(Debug)]
pub struct ExternalRun {
    dir: PathBuf,
    config: TrainConfig,
    probe: Vec<ProbeLine>,
    metrics: Vec<EpochMetrics>,
    _lock: DirLock,
}

impl ExternalRun {
    /// Open (create) the run directory `dir` for the run `config`, locked
    /// until dropped. A directory that already holds a run is refused
    /// unless `exist_ok`, and then only if it is the same head and head
    /// parameters: its lines are kept and later ones added or replaced.
    /// `epochs` in `config.toml` is the last epoch logged (0 before any).
    pub fn open(dir: &Path, mut config: TrainConfig, exist_ok: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the run directory {}", dir.display()))?;
        let lock = lock(dir, "run")?;
        let path = dir.join(CONFIG);
        let (mut probe, mut metrics) = (vec![], vec![]);
        if path.exists() {
            if !exist_ok {
                bail!(
                    "{} holds a run already ({CONFIG}); pass exist_ok=True to add to it, \
                     or choose another directory",
                    dir.display()
                );
            }
            let old = TrainConfig::from_file(&path)?;
            if (&old.head, &old.head_params) != (&config.head, &config.head_params) {
                bail!(
                    "{}: the run there has head {} {:?}, not {} {:?}; choose another directory",
                    dir.display(),
                    old.head,
                    old.head_params,
                    config.head,
                    config.head_params
                );
            }
            probe = read_jsonl(&dir.join(PROBE))?;
            metrics = read_jsonl(&dir.join(METRICS))?;
        }
        config.epochs = metrics.last().map_or(0, |m: &EpochMetrics| m.epoch);
        let run = Self {
            dir: dir.to_path_buf(),
            config,
            probe,
            metrics,
            _lock: lock,
        };
        run.write_config()?;
        Ok(run)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration written to `config.toml`.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn write_config(&self) -> Result<()> {
        let path = self.dir.join(CONFIG);
        crate::atomic::write(&path, self.config.to_toml()?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Add a probe line (replacing one of the same epoch and split), and
    /// with the latest epoch's test line the weights it measured as
    /// `class_weights.npy` (C x D, row-major).
    pub fn log_probe(&mut self, line: ProbeLine, weights: (&[f32], usize, usize)) -> Result<()> {
        check_epoch(line.epoch)?;
        let epoch = line.epoch;
        let test = line.split == "test";
        match self
            .probe
            .iter_mut()
            .find(|l| (l.epoch, &l.split) == (line.epoch, &line.split))
        {
            Some(old) => *old = line,
            None => self.probe.push(line),
        }
        self.probe
            .sort_by(|a, b| (a.epoch, &a.split).cmp(&(b.epoch, &b.split)));
        write_jsonl(&self.dir.join(PROBE), &self.probe)?;
        // The latest test epoch's weights (an older epoch logged again
        // leaves them).
        let latest = self
            .probe
            .iter()
            .filter(|l| l.split == "test")
            .map(|l| l.epoch)
            .max();
        if test && latest == Some(epoch) {
            let (w, c, d) = weights;
            crate::train::write_npy_f32(&self.dir.join(CLASS_WEIGHTS), w.to_vec(), c, d)?;
        }
        Ok(())
    }

    /// Add an epoch's metrics (replacing the same epoch's); `config.toml`'s
    /// `epochs` follows the last epoch logged.
    pub fn log_epoch(&mut self, m: EpochMetrics) -> Result<()> {
        check_epoch(m.epoch)?;
        let values = [
            ("lr", m.lr),
            ("train_loss", m.train_loss),
            ("train_acc", m.train_acc),
            ("test_loss", m.test_loss),
            ("test_acc", m.test_acc),
            ("seconds", m.seconds),
            ("images_per_s", m.images_per_s),
        ];
        if let Some((k, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
            bail!("{k} = {v}: expected a finite number");
        }
        for k in ["train_acc", "test_acc"] {
            let v = values.iter().find(|(n, _)| *n == k).map_or(0.0, |p| p.1);
            if !(0.0..=1.0).contains(&v) {
                bail!("{k} = {v}: expected a fraction in [0, 1]");
            }
        }
        match self.metrics.iter_mut().find(|o| o.epoch == m.epoch) {
            Some(old) => *old = m,
            None => self.metrics.push(m),
        }
        self.metrics.sort_by_key(|m| m.epoch);
        write_jsonl(&self.dir.join(METRICS), &self.metrics)?;
        let last = self.metrics.last().map_or(0, |m| m.epoch);
        if last != self.config.epochs {
            self.config.epochs = last;
            self.write_config()?;
        }
        Ok(())
    }
}

/// Epochs count from 1.
fn check_epoch(epoch: usize) -> Result<()> {
    if epoch == 0 {
        bail!("epoch = 0: epochs are counted from 1");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::{ProbeAnalysis, RunFiles};

    fn metrics(epoch: usize, test_acc: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            lr: 0.1,
            train_loss: 1.0,
            train_acc: 0.5,
            test_loss: 1.1,
            test_acc,
            seconds: 0.0,
            images_per_s: 0.0,
            ..Default::default()
        }
    }

    fn skipped(epoch: usize, split: &str) -> ProbeLine {
        ProbeLine {
            epoch,
            split: split.into(),
            analysis: ProbeAnalysis::Skipped {
                skipped: "test".into(),
            },
        }
    }

    #[test]
    fn a_run_written_elsewhere_reads_back_as_a_run_directory() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("torch-run");
        let config = TrainConfig {
            head: "normface".into(),
            net: "pytorch".into(),
            ..TrainConfig::default()
        };
        let mut run = ExternalRun::open(&dir, config.clone(), false).unwrap();
        run.log_epoch(metrics(2, 0.6)).unwrap();
        run.log_epoch(metrics(1, 0.4)).unwrap();
        run.log_epoch(metrics(2, 0.7)).unwrap();
        run.log_probe(skipped(1, "test"), (&[1.0, 0.0, 0.0, 1.0], 2, 2))
            .unwrap();
        run.log_probe(skipped(1, "train"), (&[], 0, 0)).unwrap();
        // The directory is locked while open.
        assert!(lock(&dir, "run").is_err());
        assert!(run.log_epoch(metrics(0, 0.5)).is_err());
        assert!(run.log_epoch(metrics(3, 1.5)).is_err());
        drop(run);
        let files = RunFiles::read(&dir).unwrap().unwrap();
        assert_eq!(files.config.epochs, 2);
        assert_eq!(files.config.head, "normface");
        let accs: Vec<f64> = files.history.iter().map(|m| m.test_acc).collect();
        assert_eq!(accs, [0.4, 0.7]);
        assert_eq!(files.probe.len(), 2);
        assert!(dir.join(CLASS_WEIGHTS).exists());
        // Reopening: refused without exist_ok, refused for another head.
        let e = ExternalRun::open(&dir, config.clone(), false).unwrap_err();
        assert!(format!("{e:#}").contains("exist_ok"), "{e:#}");
        let other = TrainConfig {
            head: "arcface".into(),
            ..config.clone()
        };
        let e = ExternalRun::open(&dir, other, true).unwrap_err();
        assert!(format!("{e:#}").contains("arcface"), "{e:#}");
        let mut run = ExternalRun::open(&dir, config, true).unwrap();
        run.log_epoch(metrics(3, 0.8)).unwrap();
        drop(run);
        let files = RunFiles::read(&dir).unwrap().unwrap();
        assert_eq!(files.history.len(), 3);
        assert_eq!(files.probe.len(), 2);
    }
}
