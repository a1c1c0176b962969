//! Working through a study's cells: one process (`symfeat study`), a shard
//! of them (`--shard i/n`, e.g. a Slurm array task), or several worker
//! processes at once (`--jobs N`), on one machine or many sharing the study
//! directory.
//!
//! No cell runs twice and none is lost: a process locks a cell's run
//! directory (an OS file lock, released on exit and crash) before it looks
//! at it, trains it if it is not finished, and moves on when another
//! process holds it. A cell whose holder died is free again and resumes
//! from its last checkpoint. After its pass a process revisits the cells it
//! found held, so a cell briefly held by a `--status` probe is not left
//! behind. The study directory's own lock is taken only to check and write
//! `study.toml`, so any number of processes can work on one study.

use super::cells::Shard;
use super::grid::{RunSpec, StudyConfig};
use crate::run_dir::{self, DIVERGED, FAILED, Locked, RunStatus, STUDY_FILE, run_status};
use crate::train::train_locked;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a process waits for another one to finish checking and writing
/// `study.toml` (they hold the study's lock for milliseconds).
const STUDY_LOCK_WAIT: Duration = Duration::from_secs(30);

/// How this process works through a study.
#[derive(Debug, Clone, Default)]
pub struct Work {
    /// Only this shard's cells (default: all of them).
    pub shard: Option<Shard>,
    /// CPU threads of each run, overriding `train.threads` (what a run's
    /// results are does not depend on it: the CPU kernels are deterministic
    /// for any thread count).
    pub threads: Option<usize>,
    /// This process is worker `k` of `--jobs`: no progress bar, its lines
    /// say which worker wrote them.
    pub worker: Option<usize>,
}

/// What a study did: its runs, those that failed, those other processes
/// still hold.
#[derive(Debug, Clone)]
pub struct StudyOutcome {
    /// Every run of the grid.
    pub runs: Vec<RunSpec>,
    /// `(run name, error)` of the runs that failed in this invocation.
    pub failed: Vec<(String, String)>,
    /// The runs of this process's cells that other processes were still
    /// training when it ended.
    pub elsewhere: Vec<String>,
}

/// Create the study directory, and check `study.toml` against `study` (or
/// write it), under the study's lock. Returns the grid's runs.
pub fn prepare_study(study: &StudyConfig, out: &Path) -> Result<Vec<RunSpec>> {
    std::fs::create_dir_all(out.join(run_dir::STUDY_RUNS))
        .with_context(|| format!("cannot create study directory {}", out.display()))?;
    let runs = study.runs(out)?;
    let _lock = run_dir::lock_waiting(out, "study", STUDY_LOCK_WAIT)?;
    let study_file = out.join(STUDY_FILE);
    let text = toml::to_string_pretty(study).context("serialising the study")?;
    match std::fs::read_to_string(&study_file) {
        Ok(old) if old != text => bail!(
            "{} holds a different study; use another --out (or delete it) to start a new one",
            study_file.display()
        ),
        Ok(_) => {}
        Err(_) => crate::atomic::write(&study_file, text.as_bytes())?,
    }
    Ok(runs)
}

/// What happened to one cell in one visit.
enum Visit {
    /// Another process holds it.
    Held(String),
    /// Looked at (trained, resumed, or found finished, diverged or failed).
    Done,
}

/// Run the cells of `work`'s shard (all by default) of the study in `out`
/// that are not finished and no other process holds, then return what
/// happened (the caller builds the report). A run that fails (other than
/// by diverging) is recorded in its `failed.json` and the study goes on; a
/// later study retries it.
pub fn run_study(study: &StudyConfig, out: &Path, work: &Work) -> Result<StudyOutcome> {
    let runs = prepare_study(study, out)?;
    let cells: Vec<usize> = (0..runs.len())
        .filter(|&k| work.shard.is_none_or(|s| s.holds(k)))
        .collect();
    let bar = if work.worker.is_some() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(cells.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "study [{bar:30}] {pos}/{len} runs, {elapsed} elapsed, ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let who = match (work.worker, work.shard) {
        (Some(w), Some(s)) => format!("shard {s}, worker {w}: "),
        (Some(w), None) => format!("worker {w}: "),
        (None, Some(s)) => format!("shard {s}: "),
        (None, None) => String::new(),
    };
    let total = runs.len();
    let mut failed = vec![];
    let mut held = vec![];
    for &k in &cells {
        let line = |what: &str| {
            bar.suspend(|| eprintln!("{who}[{}/{total}] {}: {what}", k + 1, runs[k].name))
        };
        match visit(&runs[k], work, &line, &mut failed)? {
            Visit::Held(_) => held.push(k),
            Visit::Done => bar.inc(1),
        }
    }
    let mut elsewhere = vec![];
    for k in held {
        let line = |what: &str| {
            bar.suspend(|| eprintln!("{who}[{}/{total}] {}: {what}", k + 1, runs[k].name))
        };
        if let Visit::Held(e) = visit(&runs[k], work, &line, &mut failed)? {
            line(&format!("{e}; skipped"));
            elsewhere.push(runs[k].name.clone());
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(StudyOutcome {
        runs,
        failed,
        elsewhere,
    })
}

/// Lock one cell, train or resume it if it needs it, record how it ended.
fn visit(
    run: &RunSpec,
    work: &Work,
    line: &dyn Fn(&str),
    failed: &mut Vec<(String, String)>,
) -> Result<Visit> {
    let dir = &run.config.out;
    // The run is locked before the study looks at it: a run another
    // process is training is skipped, never marked or touched.
    let lock = std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create run directory {}", dir.display()))
        .and_then(|()| run_dir::lock(dir, "run"));
    let lock = match lock {
        Ok(l) => l,
        Err(e) if e.downcast_ref::<Locked>().is_some() => return Ok(Visit::Held(format!("{e:#}"))),
        Err(e) => return Err(e.context(format!("study run {}", run.name))),
    };
    let mut config = run.config.clone();
    if work.threads.is_some() {
        config.threads = work.threads;
    }
    let mut status = run_status(dir, &config);
    if status == RunStatus::Failed {
        // Retried: the error may have been the machine's (disk, memory).
        std::fs::remove_file(dir.join(FAILED))
            .with_context(|| format!("cannot remove {}", dir.join(FAILED).display()))?;
        status = run_status(dir, &config);
        line("failed earlier, retrying");
    }
    let result = match status {
        RunStatus::Finished => {
            line("finished earlier, skipped");
            None
        }
        RunStatus::Diverged => {
            line("diverged earlier, skipped");
            None
        }
        RunStatus::Unreadable(e) => Some(Err(anyhow::anyhow!(
            "{e}; the checkpoint is kept: move it away to start this run again"
        ))),
        RunStatus::New | RunStatus::Partial(_) | RunStatus::Failed => {
            let resume = matches!(status, RunStatus::Partial(_));
            line(if resume { "resuming" } else { "training" });
            Some(
                config
                    .check()
                    .and_then(|valid| train_locked(&valid, resume, &lock)),
            )
        }
    };
    match result {
        None => {}
        Some(Ok(h)) => {
            let acc = h.history.last().map(|m| m.test_acc).unwrap_or(f64::NAN);
            line(&format!("test accuracy {:.2}%", 100.0 * acc));
        }
        Some(Err(e)) if e.downcast_ref::<crate::train::Diverged>().is_some() => {
            let msg = format!("{e:#}");
            run_dir::write_marker(dir, DIVERGED, &msg)?;
            line(&format!("DIVERGED: {msg}"));
        }
        Some(Err(e)) => {
            let msg = format!("{e:#}");
            run_dir::write_marker(dir, FAILED, &msg)?;
            line(&format!("FAILED: {msg}"));
            failed.push((run.name.clone(), msg));
        }
    }
    Ok(Visit::Done)
}

/// `--jobs N`: work through the study with `N` worker processes (this
/// binary, `symfeat study --worker k`), each with `threads / N` CPU threads
/// (`threads`: `--threads`, else `train.threads`, else the machine's
/// cores), all on the same cells (or `shard`'s): the cell locks share them
/// out, a worker taking the next free cell when it is done. Child processes
/// rather than threads: the CPU backend's thread pool is one per process,
/// and a crash stays in its worker. Returns when every worker has ended.
pub fn run_jobs(
    study: &StudyConfig,
    out: &Path,
    jobs: usize,
    shard: Option<Shard>,
    threads: Option<usize>,
) -> Result<StudyOutcome> {
    let runs = prepare_study(study, out)?;
    let cores = threads
        .or(study.train.threads)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let per_job = (cores / jobs).max(1);
    let exe = std::env::current_exe().context("cannot find the symfeat executable")?;
    eprintln!(
        "study: {jobs} worker processes, {per_job} thread(s) each, on {} cells",
        runs.len()
    );
    let mut children = vec![];
    for k in 1..=jobs {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("study")
            .arg("--config")
            .arg(out.join(STUDY_FILE))
            .arg("--out")
            .arg(out)
            .arg("--worker")
            .arg(k.to_string())
            .arg("--threads")
            .arg(per_job.to_string());
        if let Some(s) = shard {
            cmd.arg("--shard").arg(s.to_string());
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start worker {k} ({})", exe.display()))?;
        children.push((k, child));
    }
    let mut broken = vec![];
    for (k, mut child) in children {
        let status = child
            .wait()
            .with_context(|| format!("waiting for worker {k}"))?;
        // Exit 1: some of its runs failed (recorded in their failed.json,
        // gathered below); anything else is the worker's own error.
        if !status.success() && status.code() != Some(1) {
            broken.push(format!("worker {k}: {status}"));
        }
    }
    if !broken.is_empty() {
        bail!(
            "{} (their errors are above); running the same command again continues the study",
            broken.join(", ")
        );
    }
    let mut failed = vec![];
    let mut elsewhere = vec![];
    for (k, run) in runs.iter().enumerate() {
        if shard.is_some_and(|s| !s.holds(k)) {
            continue;
        }
        let dir = &run.config.out;
        if let Some(msg) = run_dir::read_marker(dir, FAILED) {
            failed.push((run.name.clone(), msg));
        } else if run_dir::holder(dir).is_some() {
            elsewhere.push(run.name.clone());
        }
    }
    Ok(StudyOutcome {
        runs,
        failed,
        elsewhere,
    })
}

/// Where one cell stands, for `symfeat study --status`.
#[derive(Debug, Clone, PartialEq)]
pub enum CellState {
    /// Not started.
    Pending,
    /// Started, not finished, nobody working on it: the next process
    /// resumes it after this many epochs.
    Interrupted(usize),
    /// A process holds it (the lock file's holder line).
    Running(String),
    /// Done.
    Finished,
    /// Diverged (`diverged.json`).
    Diverged,
    /// Failed (`failed.json`); the next study retries it.
    Failed(String),
    /// Its checkpoint cannot be read.
    Unreadable(String),
}

impl std::fmt::Display for CellState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CellState::Pending => write!(f, "pending"),
            CellState::Interrupted(e) => {
                write!(f, "pending (interrupted after epoch {e}; resumes)")
            }
            CellState::Running(h) => write!(f, "running ({h})"),
            CellState::Finished => write!(f, "finished"),
            CellState::Diverged => write!(f, "diverged"),
            CellState::Failed(e) => write!(f, "failed: {e}"),
            CellState::Unreadable(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// Every cell of the study in `out` (read from its `study.toml`), in order,
/// with where it stands. Takes no lock but a momentary shared probe.
pub fn study_status(out: &Path) -> Result<Vec<(RunSpec, CellState)>> {
    let file = out.join(STUDY_FILE);
    if !file.exists() {
        bail!(
            "{}: no study.toml (not a study directory, or no study has started there)",
            out.display()
        );
    }
    let study = StudyConfig::from_file(&file)?;
    let runs = study
        .runs(out)
        .with_context(|| format!("invalid study file {}", file.display()))?;
    Ok(runs
        .into_iter()
        .map(|run| {
            let dir: PathBuf = run.config.out.clone();
            let state = if let Some(h) = run_dir::holder(&dir) {
                CellState::Running(h)
            } else {
                match run_status(&dir, &run.config) {
                    RunStatus::New => CellState::Pending,
                    RunStatus::Partial(e) => CellState::Interrupted(e),
                    RunStatus::Finished => CellState::Finished,
                    RunStatus::Diverged => CellState::Diverged,
                    RunStatus::Failed => {
                        CellState::Failed(run_dir::read_marker(&dir, FAILED).unwrap_or_default())
                    }
                    RunStatus::Unreadable(e) => CellState::Unreadable(e),
                }
            };
            (run, state)
        })
        .collect())
}
