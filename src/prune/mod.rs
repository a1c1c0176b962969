//! Taylor pruning (Molchanov, Mallya, Tyree, Frosio, Kautz, "Importance
//! Estimation for Neural Network Pruning", CVPR 2019; field notes §8.4):
//! score every unit (a channel of a prunable group, see
//! `nets::ChannelGroup`) with a criterion ([`Criterion`]), remove the least
//! important ones iteratively while training ([`engine`]), then rebuild
//! the network with the remaining channels ([`rebuild`]) and fine-tune it.
//!
//! The authors' code only zeroes channels; here the pruned model is a
//! smaller network (config key `channels_kept`), a normal run directory
//! that `train --resume`, `analyze`, `quantize`, `report` and
//! `bench --run` accept. The classification head and the feature the head
//! reads are never pruned.

mod criterion;
pub mod engine;
mod gates;
pub mod rebuild;
#[cfg(test)]
mod tests;

pub use criterion::Criterion;
pub use engine::{Correlation, Oracle, StepLine, TargetKind};
pub use gates::Gates;
pub use rebuild::{Cost, cost};

use crate::backend::{CpuTrain, run_on};
use crate::report::plot::{Band, CurvesFigure, png_and_svg};
use crate::run_dir::{self, Checkpoint, CheckpointState};
use crate::tensors::{collect, replace};
use crate::train::{
    Loaded, Measured, ValidTrainConfig, load_run_prepared, measure, model, param_shapes,
};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `symfeat prune` does.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The base run directory (read only).
    pub run: PathBuf,
    /// The output: the pruned run directory (one criterion, one target), or
    /// the directory of one run per criterion and target.
    pub out: PathBuf,
    /// Criteria, each pruned from the same base.
    pub criteria: Vec<Criterion>,
    /// What the targets count.
    pub target_kind: TargetKind,
    /// Fractions of the base cost to keep, in (0, 1].
    pub targets: Vec<f64>,
    /// Units removed per round (default: 0.5 % of the units, at least 1:
    /// the paper's 100 of ResNet-101's ~20,000 gates).
    pub per_round: Option<usize>,
    /// Minibatches per round (the paper's 30).
    pub every: usize,
    /// Weight of the earlier rounds' scores (the paper's 0.9).
    pub mix: f64,
    /// SGD learning rate while pruning and fine-tuning (default: the base
    /// run's lr / 100, the paper's 1e-3 after ImageNet's 0.1).
    pub lr: Option<f64>,
    /// SGD momentum (0.9).
    pub momentum: f64,
    /// Fine-tuning epochs after pruning (default: the paper's 25 of 90
    /// epochs scaled to the base run's epochs, at least 1); lr / 10 at 40 %
    /// and 80 % of them (the paper's epochs 10 and 20 of 25); no weight decay.
    pub finetune_epochs: Option<usize>,
    /// Units of the oracle check (0: none).
    pub oracle: usize,
    /// Minibatches of the oracle's fixed batch set.
    pub oracle_batches: usize,
    /// Seed (default: the base run's).
    pub seed: Option<u64>,
    /// Images per timed batch of the inference measurement.
    pub bench_batch: usize,
}

/// `prune.json` of one pruned run.
#[derive(Debug, Clone, Serialize)]
pub struct PruneResult {
    /// The base run.
    pub base: String,
    /// The pruned run.
    pub run: String,
    /// The criterion.
    pub criterion: Criterion,
    /// What the target counts and its value.
    pub target_kind: TargetKind,
    /// Fraction of the base cost kept, as asked.
    pub target: f64,
    /// Multiply-accumulates per image, base and pruned.
    pub flops_before: u64,
    /// See `flops_before`.
    pub flops_after: u64,
    /// Parameters.
    pub params_before: u64,
    /// See `params_before`.
    pub params_after: u64,
    /// `model.safetensors` sizes in bytes.
    pub bytes_before: Option<u64>,
    /// See `bytes_before`.
    pub bytes_after: Option<u64>,
    /// Test accuracy of the base model.
    pub test_acc_before: f64,
    /// Of the rebuilt model before fine-tuning.
    pub test_acc_pruned: f64,
    /// After fine-tuning.
    pub test_acc_finetuned: f64,
    /// Geometry (angle of w_c to the class mean, NC3) before, pruned, fine-tuned.
    pub geometry: BTreeMap<String, Measured>,
    /// Inference images per second on the CPU, base and pruned architecture
    /// (measured in alternation in this process).
    pub infer_img_s_before: f64,
    /// See `infer_img_s_before`.
    pub infer_img_s_after: f64,
    /// Channels kept per group.
    pub kept: BTreeMap<String, (usize, usize)>,
    /// Pruning rounds and minibatches it took.
    pub rounds: usize,
    /// The settings.
    pub settings: engine::Schedule,
    /// Fine-tuning epochs.
    pub finetune_epochs: usize,
    /// The oracle check (on the base model, the same for every target).
    pub oracle: Option<Oracle>,
    /// Seconds for pruning (shared by the targets of a criterion) and this
    /// run's fine-tuning.
    pub seconds: f64,
}

/// `symfeat prune`: every criterion x target from the same base; returns
/// one result per pruned run.
pub fn run_prune(opts: &PruneOptions) -> Result<Vec<PruneResult>> {
    check_options(opts)?;
    let base_dir = &opts.run;
    let (loaded, prepared) = load_run_prepared(base_dir)?;
    if loaded.cfg.binary != crate::nets::Binarize::None {
        bail!(
            "{}: a binary run (binary = {}) cannot be pruned: binary nets have fixed widths",
            base_dir.display(),
            loaded.cfg.binary.name()
        );
    }
    let ck_path = base_dir.join(run_dir::CHECKPOINT);
    let cfg = loaded.cfg.clone();
    let classes = loaded.classes;
    let spec = prepared.spec.clone();
    let before = measure(&loaded, &loaded.model)?;
    let base_cost = rebuild::cost_of(&cfg, &spec, classes)?;
    let units: usize = spec
        .kept
        .as_ref()
        .map(|k| k.iter().map(Vec::len).sum())
        .unwrap_or_else(|| spec.full_groups().iter().map(|g| g.1).sum());
    let lr = opts.lr.unwrap_or(cfg.raw.lr / 100.0);
    let finetune_epochs = opts
        .finetune_epochs
        .unwrap_or(((cfg.raw.epochs as f64 * 25.0 / 90.0).round() as usize).max(1));
    let mut targets = opts.targets.clone();
    targets.sort_by(|a, b| b.total_cmp(a));
    targets.dedup();
    let several = opts.criteria.len() * targets.len() > 1;
    if !several {
        refuse_existing(&opts.out)?;
    } else {
        std::fs::create_dir_all(&opts.out)
            .with_context(|| format!("cannot create {}", opts.out.display()))?;
    }
    // The directory of several runs is written by one process at a time
    // (each run inside is locked while it is written).
    let _parent = if several {
        Some(run_dir::lock(&opts.out, "prune")?)
    } else {
        None
    };
    eprintln!(
        "symfeat prune: {} ({:?}, {} units, {} MACs, {} parameters, test acc {:.2} %)",
        base_dir.display(),
        cfg.net,
        units,
        base_cost.macs,
        base_cost.params,
        100.0 * before.test_acc
    );
    let mut results = vec![];
    for &criterion in &opts.criteria {
        let schedule = engine::Schedule {
            criterion,
            target_kind: opts.target_kind,
            targets: targets.clone(),
            per_round: opts
                .per_round
                .unwrap_or(((units as f64 * 0.005).round() as usize).max(1)),
            every: opts.every,
            mix: opts.mix,
            lr,
            momentum: opts.momentum,
            batch: cfg.raw.batch,
            seed: opts.seed.unwrap_or(cfg.raw.seed),
            oracle: opts.oracle,
            oracle_batches: opts.oracle_batches,
        };
        eprintln!(
            "criterion {}: {} unit(s) every {} minibatches, lr {lr}, targets {:?} of the {}",
            criterion.name(),
            schedule.per_round,
            schedule.every,
            targets,
            match opts.target_kind {
                TargetKind::Flops => "MACs",
                TargetKind::Params => "parameters",
            }
        );
        let start = Instant::now();
        let outcome = run_on(
            cfg.device,
            engine::Job {
                cfg: &cfg,
                spec: spec.clone(),
                train: &prepared.train_set,
                norm: &prepared.norm,
                checkpoint: (Checkpoint::load(&ck_path)?, ck_path.clone()),
                schedule: &schedule,
            },
        )?;
        let prune_seconds = start.elapsed().as_secs_f64();
        if let Some(o) = &outcome.oracle {
            for (c, r) in &o.correlations {
                eprintln!(
                    "oracle ({} units, {} minibatches): {c}: Spearman {:.3}, Pearson {:.3}",
                    o.units, o.batches, r.spearman, r.pearson
                );
            }
        }
        for snap in &outcome.snapshots {
            let out = if several {
                opts.out.join(format!(
                    "{}-{}{:.2}",
                    criterion.name(),
                    match opts.target_kind {
                        TargetKind::Flops => "flops",
                        TargetKind::Params => "params",
                    },
                    snap.target
                ))
            } else {
                opts.out.clone()
            };
            let start = Instant::now();
            let r = write_pruned(
                &loaded,
                &spec,
                &before,
                &outcome,
                snap,
                &schedule,
                finetune_epochs,
                &out,
                opts,
            )?;
            let mut r = r;
            r.seconds = prune_seconds + start.elapsed().as_secs_f64();
            crate::atomic::write(
                &out.join(PRUNE_JSON),
                serde_json::to_string_pretty(&r)?.as_bytes(),
            )?;
            eprintln!(
                "{}: {} -> {} MACs ({:.1} %), test acc {:.2} % -> {:.2} % pruned -> {:.2} % fine-tuned; {:.0} -> {:.0} img/s",
                out.display(),
                r.flops_before,
                r.flops_after,
                100.0 * r.flops_after as f64 / r.flops_before as f64,
                100.0 * r.test_acc_before,
                100.0 * r.test_acc_pruned,
                100.0 * r.test_acc_finetuned,
                r.infer_img_s_before,
                r.infer_img_s_after
            );
            results.push(r);
        }
    }
    if several {
        crate::atomic::write(
            &opts.out.join(PRUNE_JSON),
            serde_json::to_string_pretty(&results)?.as_bytes(),
        )?;
        figure(&results, &opts.out)?;
    }
    Ok(results)
}

/// The per-run summary file.
pub const PRUNE_JSON: &str = "prune.json";
/// The per-round log.
pub const PRUNE_JSONL: &str = "prune.jsonl";

fn check_options(o: &PruneOptions) -> Result<()> {
    if o.criteria.is_empty() {
        bail!("--criterion: give at least one of {}", Criterion::names());
    }
    if o.targets.is_empty() {
        bail!("give --target-flops or --target-params");
    }
    if let Some(t) = o.targets.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
        bail!(
            "--target-flops/--target-params {t}: expected fractions in (0, 1] of the base model's cost"
        );
    }
    if o.every == 0 {
        bail!("--prune-every 0: expected at least 1 minibatch per round");
    }
    if o.per_round == Some(0) {
        bail!("--prune-units 0: expected at least 1 unit per round");
    }
    if !(0.0..1.0).contains(&o.mix) {
        bail!("--score-mix {}: expected a weight in [0, 1)", o.mix);
    }
    if let Some(lr) = o.lr
        && !(lr.is_finite() && lr > 0.0)
    {
        bail!("--lr {lr}: expected a positive learning rate");
    }
    if !(0.0..1.0).contains(&o.momentum) {
        bail!("--momentum {}: expected a value in [0, 1)", o.momentum);
    }
    if o.oracle > 0 && o.oracle_batches == 0 {
        bail!("--oracle-batches 0: expected at least 1 minibatch");
    }
    if o.finetune_epochs == Some(0) {
        bail!(
            "--finetune-epochs 0: expected at least 1 (the pruned model before fine-tuning \
             is measured anyway: test_acc_pruned in prune.json)"
        );
    }
    if o.bench_batch == 0 {
        bail!("--bench-batch 0: expected at least 1 image");
    }
    if o.run == o.out {
        bail!(
            "--out {}: the base run is read, never written; choose another directory",
            o.out.display()
        );
    }
    Ok(())
}

/// A directory that already holds a run is refused (nothing is overwritten).
fn refuse_existing(out: &Path) -> Result<()> {
    if out.join(run_dir::CHECKPOINT).exists() || out.join(PRUNE_JSON).exists() {
        bail!(
            "{} already holds a run; choose another --out",
            out.display()
        );
    }
    Ok(())
}

/// Rebuild the snapshot's model, write it as a run at epoch 0, fine-tune
/// it, measure it.
#[allow(clippy::too_many_arguments)]
fn write_pruned(
    base: &Loaded,
    spec: &crate::nets::NetSpec,
    before: &Measured,
    outcome: &engine::Outcome,
    snap: &engine::Snapshot,
    schedule: &engine::Schedule,
    finetune_epochs: usize,
    out: &Path,
    opts: &PruneOptions,
) -> Result<PruneResult> {
    refuse_existing(out)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let lock = run_dir::lock(out, "run")?;
    let device = Default::default();
    let cfg = &base.cfg;
    // The gated model at the snapshot, then the rebuilt one.
    let values: BTreeMap<String, Vec<f32>> = snap
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.values.clone()))
        .collect();
    let masked = replace(base.model.clone(), &values, &device)?;
    let (pruned, pruned_spec) =
        rebuild::rebuild(&masked, cfg, spec, &snap.keep, base.classes, &device)?;
    // The run's configuration: the base's, pruned, with the fine-tuning
    // schedule.
    let mut raw = cfg.raw.clone();
    raw.out = out.to_path_buf();
    raw.channels_kept = pruned_spec.kept.clone();
    raw.epochs = finetune_epochs;
    raw.lr = schedule.lr;
    raw.momentum = schedule.momentum;
    raw.weight_decay = 0.0;
    raw.nesterov = false;
    raw.warmup_epochs = 0;
    raw.plateau_window = 0;
    raw.seed = schedule.seed;
    let mut milestones: Vec<usize> = [0.4, 0.8]
        .iter()
        .map(|f| (f * finetune_epochs as f64).round() as usize)
        .filter(|&m| m > 0 && m < finetune_epochs)
        .collect();
    milestones.dedup();
    raw.schedule = if milestones.is_empty() {
        "const"
    } else {
        "multistep"
    }
    .into();
    raw.milestones = milestones;
    raw.gamma = 0.1;
    let vcfg: ValidTrainConfig = raw.check().context("the pruned run's configuration")?;
    crate::atomic::write(&out.join(run_dir::CONFIG), raw.to_toml()?.as_bytes())?;
    // Epoch 0: the rebuilt weights, a fresh optimiser.
    let train_model = model::build::<CpuTrain>(&vcfg, &pruned_spec, base.classes, &device)?;
    let pruned_values: BTreeMap<String, Vec<f32>> = collect(&pruned)?
        .into_iter()
        .map(|t| (t.name, t.values))
        .collect();
    let train_model = replace(train_model, &pruned_values, &device)?;
    let optim = crate::train::sgd(raw.momentum, false, 0.0)
        .init::<CpuTrain, crate::train::Model<CpuTrain>>();
    let state = CheckpointState {
        epochs_done: 0,
        global_step: 0,
        seed: raw.seed,
        history: vec![],
        probe: vec![],
        param_shapes: param_shapes(&train_model),
        config: Some(raw.clone()),
    };
    crate::train::capture(&state, &train_model, &optim)?.save(&out.join(run_dir::CHECKPOINT))?;
    let lines: Vec<&StepLine> = outcome.steps.iter().take(snap.step).collect();
    let mut jsonl = String::new();
    for l in lines {
        jsonl.push_str(&serde_json::to_string(l)?);
        jsonl.push('\n');
    }
    crate::atomic::write(&out.join(PRUNE_JSONL), jsonl.as_bytes())?;
    // Measure the rebuilt model, fine-tune, measure again.
    let pruned_loaded = Loaded {
        files: base.files.clone(),
        cfg: vcfg.clone(),
        test: base.test.clone(),
        norm: base.norm.clone(),
        model: pruned.clone(),
        classes: base.classes,
    };
    let at_prune = measure(&pruned_loaded, &pruned)?;
    eprintln!(
        "{}: rebuilt at {} MACs, test acc {:.2} %; fine-tuning {finetune_epochs} epoch(s)",
        out.display(),
        snap.cost.macs,
        100.0 * at_prune.test_acc
    );
    crate::train::train_locked(&vcfg, true, &lock)?;
    let tuned = crate::train::load_run(out)?;
    let finetuned = measure(&tuned, &tuned.model)?;
    let [h, w] = [spec.height, spec.width];
    let speeds = crate::bench::infer_img_s(
        &[
            (&base.model, &crate::nets::Identity),
            (&tuned.model, &crate::nets::Identity),
        ],
        [opts.bench_batch, spec.channels, h, w],
        10,
        2,
        5,
        &device,
    );
    let size = |d: &Path| {
        std::fs::metadata(d.join(run_dir::WEIGHTS))
            .ok()
            .map(|m| m.len())
    };
    let groups = base.model.net.channel_groups();
    Ok(PruneResult {
        base: opts.run.display().to_string(),
        run: out.display().to_string(),
        criterion: schedule.criterion,
        target_kind: schedule.target_kind,
        target: snap.target,
        flops_before: outcome.base_cost.macs,
        flops_after: snap.cost.macs,
        params_before: outcome.base_cost.params,
        params_after: snap.cost.params,
        bytes_before: size(&opts.run),
        bytes_after: size(out),
        test_acc_before: before.test_acc,
        test_acc_pruned: at_prune.test_acc,
        test_acc_finetuned: finetuned.test_acc,
        geometry: [
            ("before".to_string(), before.clone()),
            ("pruned".to_string(), at_prune),
            ("finetuned".to_string(), finetuned),
        ]
        .into_iter()
        .collect(),
        infer_img_s_before: speeds[0],
        infer_img_s_after: speeds[1],
        kept: groups
            .iter()
            .zip(&snap.keep)
            .map(|(g, k)| (g.name.clone(), (k.len(), g.channels)))
            .collect(),
        rounds: snap.step,
        settings: schedule.clone(),
        finetune_epochs,
        oracle: outcome.oracle.clone(),
        seconds: 0.0,
    })
}

/// `accuracy_vs_flops.{png,svg}`: fine-tuned test accuracy against the
/// fraction of the base's MACs kept, one line per criterion, the base's
/// accuracy as a flat line.
fn figure(results: &[PruneResult], out: &Path) -> Result<()> {
    let mut series: Vec<Band> = vec![];
    let mut by: BTreeMap<&str, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    for r in results {
        let x = r.flops_after as f64 / r.flops_before as f64;
        let a = r.test_acc_finetuned;
        by.entry(r.criterion.name()).or_default().push((x, a, a, a));
    }
    for (name, mut points) in by {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Band {
            label: name.into(),
            points,
        });
    }
    if let Some(r) = results.first() {
        let a = r.test_acc_before;
        series.push(Band {
            label: "unpruned".into(),
            points: vec![(0.0, a, a, a), (1.0, a, a, a)],
        });
    }
    let fig = CurvesFigure {
        title: "Test accuracy after pruning and fine-tuning".into(),
        x_label: "fraction of the base model's MACs kept".into(),
        y_label: "test accuracy".into(),
        series,
    };
    png_and_svg(&out.join("accuracy_vs_flops"), (760, 460), &fig)
}
