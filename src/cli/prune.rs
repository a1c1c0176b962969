//! `symfeat prune`: Taylor pruning of a trained run.

use crate::backend::set_threads;
use crate::prune::{Criterion, PruneOptions, TargetKind, run_prune};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// `symfeat prune RUN_DIR ...`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// A run directory (`symfeat train --out`), read only; its last checkpoint is pruned.
    run: PathBuf,
    /// Criteria, comma-separated: taylor-fo-bn, taylor-fo, taylor-so, weight, random (several: one run each, and a figure).
    #[arg(long, default_value = "taylor-fo-bn", value_delimiter = ',')]
    criterion: Vec<String>,
    /// Stop at these fractions of the base model's multiply-accumulates, comma-separated, in (0, 1].
    #[arg(long, value_delimiter = ',', conflicts_with = "target_params")]
    target_flops: Vec<f64>,
    /// Stop at these fractions of the base model's parameters, comma-separated, in (0, 1].
    #[arg(long, value_delimiter = ',')]
    target_params: Vec<f64>,
    /// The pruned run directory; with several criteria or targets, the directory of one run each (CRITERION-flopsT).
    #[arg(long)]
    out: PathBuf,
    /// Fine-tuning epochs (default: 25/90 of the base run's epochs, at least 1).
    #[arg(long)]
    finetune_epochs: Option<usize>,
    /// SGD learning rate while pruning and fine-tuning (default: the base run's lr / 100).
    #[arg(long)]
    lr: Option<f64>,
    /// SGD momentum while pruning and fine-tuning.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Minibatches per pruning round.
    #[arg(long, default_value_t = 30)]
    prune_every: usize,
    /// Units removed per round (default: 0.5 % of the units, at least 1).
    #[arg(long)]
    prune_units: Option<usize>,
    /// Weight of the earlier rounds' scores when a round's scores are mixed in.
    #[arg(long, default_value_t = 0.9)]
    score_mix: f64,
    /// Oracle check: the true importance of N random units against every criterion (0: off).
    #[arg(long, default_value_t = 0)]
    oracle: usize,
    /// Minibatches of the oracle's fixed batch set.
    #[arg(long, default_value_t = 4)]
    oracle_batches: usize,
    /// Seed (default: the base run's).
    #[arg(long)]
    seed: Option<u64>,
    /// Images per batch of the inference-speed measurement.
    #[arg(long, default_value_t = 256)]
    bench_batch: usize,
    /// CPU threads.
    #[arg(long)]
    threads: Option<usize>,
}

pub(super) fn prune(a: PruneArgs) -> Result<ExitCode> {
    let mut criteria = vec![];
    for c in &a.criterion {
        match Criterion::parse(c) {
            Some(k) if !criteria.contains(&k) => criteria.push(k),
            Some(_) => {}
            None => bail!("--criterion {c:?}: expected one of {}", Criterion::names()),
        }
    }
    let (target_kind, targets) = match (a.target_flops.is_empty(), a.target_params.is_empty()) {
        (false, _) => (TargetKind::Flops, a.target_flops.clone()),
        (true, false) => (TargetKind::Params, a.target_params.clone()),
        (true, true) => {
            bail!("give --target-flops or --target-params (fractions of the base model kept)")
        }
    };
    if let Some(0) = a.threads {
        bail!("--threads 0: expected at least 1");
    }
    set_threads(a.threads);
    run_prune(&PruneOptions {
        run: a.run,
        out: a.out,
        criteria,
        target_kind,
        targets,
        per_round: a.prune_units,
        every: a.prune_every,
        mix: a.score_mix,
        lr: a.lr,
        momentum: a.momentum,
        finetune_epochs: a.finetune_epochs,
        oracle: a.oracle,
        oracle_batches: a.oracle_batches,
        seed: a.seed,
        bench_batch: a.bench_batch,
    })?;
    Ok(ExitCode::SUCCESS)
}
