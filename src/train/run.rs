//! The training loop, top to bottom: build, resume, then per epoch
//! (set lr, forward, loss, check, backward, step, log), evaluate, log,
//! checkpoint; at the end the final weights and the optional exports.

use super::checkpoint::{Checkpoint, CheckpointState, check_fits, param_shapes};
use super::config::{Normalize, ValidTrainConfig};
use super::export::{export_safetensors, write_npy_f32, write_npy_i64};
use crate::backend::{BackendJob, run_on, set_threads};
use crate::data::{self, Augment, ImageSet, Normalizer};
use crate::heads::{CenterLoss, Head, HeadOps, cross_entropy};
use crate::nets::{Backbone, BatchNorm2d, NetSpec};
use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A backbone and a head: images `[B, Ch, H, W]` -> features `[B, D]` -> logits `[B, C]`.
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    /// Backbone.
    pub net: Backbone<B>,
    /// BatchNorm1d between backbone and head (`feature_act = bn`).
    pub feature_bn: Option<BatchNorm2d<B>>,
    /// Classification head.
    pub head: Head<B>,
    /// Center loss (auxiliary term), for `--head center`.
    pub center: Option<CenterLoss<B>>,
}

impl<B: Backend> Model<B> {
    /// The features the head sees, `[B, D]`.
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.net.forward(images);
        match &self.feature_bn {
            Some(bn) => bn.forward_features(x),
            None => x,
        }
    }

    /// Features `[B, D]` and prediction logits `[B, C]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let features = self.features(images);
        let logits = self.head.logits(features.clone());
        (features, logits)
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// A run whose loss became non-finite: a typed error, so that a study
/// records it (`diverged.json`) and goes on, whatever the message says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "training diverged: non-finite loss ({loss}) at epoch {epoch} step {step} (lr {lr}); \
     the last good checkpoint ({}) is kept",
    if *last_good > 0 { format!("after epoch {last_good}") } else { "none yet".to_string() }
)]
pub struct Diverged {
    /// The loss value (NaN or infinite).
    pub loss: f64,
    /// Epoch (1-based).
    pub epoch: usize,
    /// Step within the epoch (1-based).
    pub step: usize,
    /// Learning rate of that step.
    pub lr: f64,
    /// Epochs of the checkpoint that is kept (0: none).
    pub last_good: usize,
}

/// What a finished run returns.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Every epoch's metrics.
    pub history: Vec<EpochMetrics>,
    /// The run directory.
    pub out: PathBuf,
}

/// File names inside a run directory.
pub(crate) mod files {
    pub const CONFIG: &str = "config.toml";
    pub const METRICS: &str = "metrics.jsonl";
    pub const CHECKPOINT: &str = "checkpoint.bin";
    pub const WEIGHTS: &str = "model.safetensors";
    pub const PROBE: &str = "probe.jsonl";
    /// Every file a run writes (atomically), for the clean-up of the
    /// temporary files an interrupted write leaves.
    pub const ALL: [&str; 11] = [
        CONFIG,
        METRICS,
        CHECKPOINT,
        WEIGHTS,
        PROBE,
        "features.npy",
        "labels.npy",
        "class_weights.npy",
        "bias.npy",
        "head_params.npy",
        "diverged.json",
    ];
}

type Rec = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// Train as configured. With `resume`, continue from `out/checkpoint.bin`.
pub fn train(cfg: &ValidTrainConfig, resume: bool) -> Result<TrainOutcome> {
    let out = cfg.raw.out.clone();
    let ckpt_path = out.join(files::CHECKPOINT);
    let checkpoint = if resume {
        if !ckpt_path.exists() {
            bail!(
                "--resume: no checkpoint at {}; start the run without --resume",
                ckpt_path.display()
            );
        }
        Some(Checkpoint::load(&ckpt_path)?)
    } else {
        if ckpt_path.exists() {
            bail!(
                "{} already holds a run (checkpoint.bin); continue it with \
                 `symfeat train --config {} --resume` or choose another --out",
                out.display(),
                out.join(files::CONFIG).display()
            );
        }
        None
    };
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    for p in crate::atomic::remove_stale_temps(&out, &files::ALL)
        .with_context(|| format!("cannot clean up output directory {}", out.display()))?
    {
        eprintln!("removed {}, left by an interrupted write", p.display());
    }
    // A resume rewrites config.toml only once the checkpoint fits the model
    // (see `TrainJob::run`): a failed attempt leaves the run as it was.
    if checkpoint.is_none() {
        crate::atomic::write(&out.join(files::CONFIG), cfg.raw.to_toml().as_bytes())?;
    }

    let (mut train_set, mut test_set) = data::load(cfg.dataset, cfg.raw.data.as_deref())?;
    if let Some(n) = cfg.raw.train_limit {
        train_set.truncate(n);
    }
    if let Some(n) = cfg.raw.test_limit {
        test_set.truncate(n);
    }
    let norm = match cfg.normalize {
        Normalize::Dataset => Normalizer::fit(&train_set),
        Normalize::Half => Normalizer::half(train_set.channels),
    };
    let spec = NetSpec {
        kind: cfg.net,
        channels: train_set.channels,
        height: train_set.height,
        width: train_set.width,
        lenet_dim: cfg.raw.feature_dim,
        feature_act: cfg.feature_act,
    };
    spec.check().map_err(|e| anyhow::anyhow!("net: {e}"))?;
    set_threads(cfg.raw.threads);
    eprintln!(
        "symfeat train: {} ({} train / {} test), net {}, head {}, {} epochs on {}",
        cfg.raw.dataset,
        train_set.n,
        test_set.n,
        cfg.raw.net,
        cfg.raw.head,
        cfg.raw.epochs,
        cfg.device
    );
    let job = TrainJob {
        cfg,
        spec,
        train_set,
        test_set,
        norm,
        checkpoint,
        out: out.clone(),
    };
    let history = run_on(cfg.device, job)?;
    Ok(TrainOutcome { history, out })
}

struct TrainJob<'a> {
    cfg: &'a ValidTrainConfig,
    spec: NetSpec,
    train_set: ImageSet,
    test_set: ImageSet,
    norm: Normalizer,
    checkpoint: Option<Checkpoint>,
    out: PathBuf,
}

/// Images `idx` of `set` as tensors `[B, Ch, H, W]` and labels `[B]`.
pub(crate) fn batch_tensors<B: Backend>(
    set: &ImageSet,
    idx: &[usize],
    norm: &Normalizer,
    augment: Option<(&Augment, &mut ChaCha8Rng)>,
    buf: &mut Vec<f32>,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let labels = data::fill_batch(set, idx, norm, augment, buf);
    let shape = [idx.len(), set.channels, set.height, set.width];
    let x = Tensor::from_data(TensorData::new(std::mem::take(buf), shape), device);
    let y = Tensor::from_data(TensorData::new(labels, [idx.len()]), device);
    (x, y)
}

/// What one pass over a set gives: mean loss, accuracy, and the
/// penultimate features `[N, D]` with their labels (for the probe).
pub(crate) struct Evaluation {
    pub loss: f64,
    pub acc: f64,
    pub features: Vec<f32>,
    pub labels: Vec<usize>,
}

/// Evaluate `model` on the images `indices` of `set`.
pub(crate) fn evaluate<B: Backend>(
    model: &Model<B>,
    set: &ImageSet,
    indices: &[usize],
    norm: &Normalizer,
    eval_batch: usize,
    device: &B::Device,
) -> Evaluation {
    let (mut loss_sum, mut correct) = (0.0f64, 0i64);
    let mut buf = Vec::new();
    let mut features = Vec::new();
    let mut labels = Vec::with_capacity(indices.len());
    for idx in indices.chunks(eval_batch) {
        let (x, y) = batch_tensors::<B>(set, idx, norm, None, &mut buf, device);
        let (f, logits) = model.forward(x);
        let loss: f32 = cross_entropy(logits.clone(), y.clone())
            .into_scalar()
            .elem();
        loss_sum += loss as f64 * idx.len() as f64;
        correct += count_correct(logits, y);
        features.extend(to_f32(f));
        labels.extend(idx.iter().map(|&i| set.labels[i] as usize));
    }
    let n = indices.len().max(1) as f64;
    Evaluation {
        loss: loss_sum / n,
        acc: correct as f64 / n,
        features,
        labels,
    }
}

fn count_correct<B: Backend>(logits: Tensor<B, 2>, y: Tensor<B, 1, Int>) -> i64 {
    let [b, _] = logits.dims();
    logits
        .argmax(1)
        .reshape([b])
        .equal(y)
        .int()
        .sum()
        .into_scalar()
        .elem()
}

/// Seed of the augmentation stream of one epoch.
fn augment_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed.rotate_left(17) ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for m in rows {
        text.push_str(&serde_json::to_string(m)?);
        text.push('\n');
    }
    crate::atomic::write(path, text.as_bytes())?;
    Ok(())
}

impl BackendJob for TrainJob<'_> {
    type Output = Vec<EpochMetrics>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Vec<EpochMetrics>> {
        let TrainJob {
            cfg,
            spec,
            train_set,
            test_set,
            norm,
            checkpoint,
            out,
        } = self;
        let raw = &cfg.raw;
        B::seed(&device, raw.seed);
        let classes = train_set.num_classes;
        let d = spec.feature_dim();
        let head = cfg.head.init::<B>(d, classes, &device).map_err(|e| {
            let from = if cfg.net == crate::nets::NetKind::Lenet {
                ", set by --feature-dim"
            } else {
                ""
            };
            anyhow::anyhow!(
                "--head {} on net {} (D = {d}{from}) and {} (C = {classes}): {e}",
                raw.head,
                raw.net,
                raw.dataset
            )
        })?;
        let center = cfg
            .head
            .center()
            .map(|(w, lr)| CenterLoss::new(spec.feature_dim(), classes, w, lr, &device));
        let mut model = Model {
            net: spec.init::<B>(&device),
            feature_bn: spec.feature_bn(&device),
            head,
            center,
        };
        let momentum = (raw.momentum > 0.0).then_some(MomentumConfig {
            momentum: raw.momentum,
            dampening: 0.0, // PyTorch's default; burn's is 0.1
            nesterov: raw.nesterov,
        });
        let decay = (raw.weight_decay > 0.0).then_some(WeightDecayConfig {
            penalty: raw.weight_decay as f32,
        });
        let mut optim = SgdConfig::new()
            .with_momentum(momentum)
            .with_weight_decay(decay)
            .init::<B, Model<B>>();

        let mut state = CheckpointState {
            epochs_done: 0,
            global_step: 0,
            seed: raw.seed,
            history: vec![],
            probe: vec![],
            param_shapes: param_shapes(&model),
            config: Some(raw.clone()),
        };
        if let Some(ck) = checkpoint {
            let ckpt_path = out.join(files::CHECKPOINT);
            check_fits(&ck.state, &state.param_shapes, raw, &ckpt_path)?;
            if ck.state.seed != raw.seed {
                bail!(
                    "checkpoint {} was written with seed {}, the configuration has seed {}; \
                     resume with --seed {}",
                    ckpt_path.display(),
                    ck.state.seed,
                    raw.seed,
                    ck.state.seed
                );
            }
            let rec = Rec::default();
            let model_rec = rec.load(ck.model, &device).map_err(|e| {
                anyhow::anyhow!("checkpoint model record does not fit this config: {e}")
            })?;
            model = model.load_record(model_rec);
            let optim_rec = rec.load(ck.optim, &device).map_err(|e| {
                anyhow::anyhow!("checkpoint optimizer record does not fit this config: {e}")
            })?;
            optim = optim.load_record(optim_rec);
            state = CheckpointState {
                param_shapes: state.param_shapes,
                config: state.config,
                ..ck.state
            };
            crate::atomic::write(&out.join(files::CONFIG), raw.to_toml().as_bytes())?;
            eprintln!(
                "resuming after epoch {} (step {})",
                state.epochs_done, state.global_step
            );
        }

        let steps_per_epoch = train_set.n.div_ceil(raw.batch);
        let aug = Augment {
            crop_pad: 4,
            flip: true,
        };
        let mut buf = Vec::new();
        let all_test: Vec<usize> = (0..test_set.n).collect();
        // The probe's fixed training subset: the first images in file order.
        let probe_train: Vec<usize> = (0..train_set.n.min(raw.probe_train_samples)).collect();
        for epoch in state.epochs_done..raw.epochs {
            // After a plateau: `plateau_anneal_epochs` epochs at lr x gamma, then stop.
            let mut lr_factor = 1.0;
            if let Some((k, c)) = plateau(raw, &state.history) {
                if epoch == k {
                    eprintln!(
                        "test accuracy has plateaued after epoch {k} (slope {:+.3} points per epoch over the last {} epochs, t = {:.2}){}",
                        100.0 * c.slope,
                        c.window,
                        c.t,
                        if raw.plateau_anneal_epochs > 0 {
                            format!(
                                "; {} more epoch(s) at lr x {}",
                                raw.plateau_anneal_epochs, raw.gamma
                            )
                        } else {
                            "; stopping".into()
                        }
                    );
                }
                if epoch >= k + raw.plateau_anneal_epochs {
                    break;
                }
                lr_factor = raw.gamma;
            }
            let start = Instant::now();
            let order = data::epoch_order(train_set.n, raw.seed, epoch);
            let mut rng = augment_rng(raw.seed, epoch);
            let bar = ProgressBar::new(steps_per_epoch as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", epoch + 1, raw.epochs));
            let (mut loss_sum, mut correct, mut lr) = (0.0f64, 0i64, raw.lr);
            for (step, idx) in order.chunks(raw.batch).enumerate() {
                lr = lr_factor
                    * cfg.schedule.lr(
                        raw.lr,
                        state.global_step,
                        steps_per_epoch,
                        raw.epochs,
                        raw.warmup_epochs,
                    );
                let augment = cfg.augment.then_some((&aug, &mut rng));
                let (x, y) = batch_tensors::<B>(&train_set, idx, &norm, augment, &mut buf, &device);
                let features = model.features(x);
                let logits =
                    model
                        .head
                        .train_logits(features.clone(), y.clone(), state.global_step);
                // Accuracy from the prediction logits: a margin head's training
                // logits penalise the target and would understate it.
                let pred_logits = model.head.logits(features.clone().detach());
                let mut loss = cross_entropy(logits, y.clone());
                if let Some(center) = &model.center {
                    loss = loss + center.loss(features.clone(), y.clone());
                }
                let loss_value: f32 = loss.clone().into_scalar().elem();
                if !loss_value.is_finite() {
                    bar.abandon();
                    return Err(Diverged {
                        loss: loss_value as f64,
                        epoch: epoch + 1,
                        step: step + 1,
                        lr,
                        last_good: state.epochs_done,
                    }
                    .into());
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                if let Some(center) = model.center.take() {
                    model.center = Some(center.update(features, y.clone()));
                }
                loss_sum += loss_value as f64 * idx.len() as f64;
                correct += count_correct(pred_logits, y.clone());
                state.global_step += 1;
                bar.inc(1);
                if step % 20 == 0 {
                    bar.set_message(format!(
                        "loss {:.4}",
                        loss_sum / ((step + 1) * raw.batch).min(train_set.n) as f64
                    ));
                }
            }
            bar.finish_and_clear();
            let train_seconds = start.elapsed().as_secs_f64();
            let valid = model.valid();
            let test_eval = evaluate(&valid, &test_set, &all_test, &norm, raw.eval_batch, &device);
            let (test_loss, test_acc) = (test_eval.loss, test_eval.acc);
            let m = EpochMetrics {
                epoch: epoch + 1,
                lr,
                train_loss: loss_sum / train_set.n as f64,
                train_acc: correct as f64 / train_set.n as f64,
                test_loss,
                test_acc,
                seconds: start.elapsed().as_secs_f64(),
                images_per_s: train_set.n as f64 / train_seconds.max(1e-9),
            };
            eprintln!(
                "epoch {:>3}/{}  lr {:.4}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%  {:.1}s ({:.0} img/s)",
                m.epoch,
                raw.epochs,
                m.lr,
                m.train_loss,
                100.0 * m.train_acc,
                m.test_loss,
                100.0 * m.test_acc,
                m.seconds,
                m.images_per_s
            );
            if raw.probe {
                let train_eval = evaluate(
                    &valid,
                    &train_set,
                    &probe_train,
                    &norm,
                    raw.eval_batch,
                    &device,
                );
                for (split, ev) in [("test", &test_eval), ("train", &train_eval)] {
                    state
                        .probe
                        .push(probe_line(&valid, epoch + 1, split, ev, classes));
                }
            }
            state.history.push(m);
            state.epochs_done = epoch + 1;
            let rec = Rec::default();
            let ck = Checkpoint {
                state: state.clone(),
                model: rec
                    .record(model.clone().into_record(), ())
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                optim: rec
                    .record(optim.to_record(), ())
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            // Metrics first, then the checkpoint: a crash in between re-runs
            // the epoch on resume and rewrites the same line.
            write_jsonl(&out.join(files::METRICS), &state.history)?;
            if raw.probe {
                write_jsonl(&out.join(files::PROBE), &state.probe)?;
            }
            ck.save(&out.join(files::CHECKPOINT))?;
        }

        let valid = model.valid();
        export_safetensors(&valid, &out.join(files::WEIGHTS))?;
        if raw.export_features {
            export_features(&valid, &test_set, &norm, raw.eval_batch, &device, &out)?;
        }
        Ok(state.history)
    }
}

/// The plateau of a run trained with `plateau_window`: the first epoch
/// count `k` at which the convergence test (`crate::statistics::convergence`)
/// on the test accuracy of epochs `..k` passes, with that test. The trainer
/// checks after every epoch, so this is where it started annealing or
/// stopped; the history alone decides it (no extra state to resume).
pub fn plateau(
    cfg: &super::TrainConfig,
    history: &[EpochMetrics],
) -> Option<(usize, crate::statistics::Convergence)> {
    if cfg.plateau_window == 0 {
        return None;
    }
    let accs: Vec<f64> = history.iter().map(|m| m.test_acc).collect();
    (cfg.plateau_window..=accs.len()).find_map(|k| {
        crate::statistics::convergence(&accs[..k], cfg.plateau_window, cfg.plateau_slope)
            .filter(|c| c.converged())
            .map(|c| (k, c))
    })
}

/// Whether a run of `cfg` with this history is complete: every epoch, or
/// its plateau and the annealing epochs after it.
pub fn complete(cfg: &super::TrainConfig, history: &[EpochMetrics]) -> bool {
    history.len() >= cfg.epochs
        || plateau(cfg, history)
            .is_some_and(|(k, _)| history.len() >= k + cfg.plateau_anneal_epochs)
}

/// Write the test-set penultimate features, labels and the head's weights as NPY.
pub(crate) fn export_features<B: Backend>(
    model: &Model<B>,
    set: &ImageSet,
    norm: &Normalizer,
    eval_batch: usize,
    device: &B::Device,
    out: &Path,
) -> Result<()> {
    let mut feats = Vec::new();
    let mut labels = Vec::with_capacity(set.n);
    let mut buf = Vec::new();
    let order: Vec<usize> = (0..set.n).collect();
    let mut d = 0;
    for idx in order.chunks(eval_batch) {
        let batch_labels = data::fill_batch(set, idx, norm, None, &mut buf);
        let shape = [idx.len(), set.channels, set.height, set.width];
        let x = Tensor::<B, 4>::from_data(TensorData::new(std::mem::take(&mut buf), shape), device);
        let f = model.features(x);
        d = f.dims()[1];
        feats.extend(to_f32(f));
        labels.extend(batch_labels);
    }
    write_npy_f32(&out.join("features.npy"), feats, set.n, d)?;
    write_npy_i64(&out.join("labels.npy"), labels)?;
    let w = model.head.class_weights();
    let [c, dw] = w.dims();
    write_npy_f32(&out.join("class_weights.npy"), to_f32(w), c, dw)?;
    if let Some(b) = model.head.bias() {
        let n = b.dims()[0];
        write_npy_f32(&out.join("bias.npy"), to_f32(b), 1, n)?;
    }
    if let Some(p) = model.head.derived_params() {
        let [r, dp] = p.dims();
        write_npy_f32(&out.join("head_params.npy"), to_f32(p), r, dp)?;
    }
    Ok(())
}

/// One line of `probe.jsonl`: the geometry of the head against the
/// features of one split after one epoch (field notes §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeLine {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// "test" (the whole test set) or "train" (the fixed training subset).
    pub split: String,
    /// The full analysis (per-class angles, NC1-NC4, symmetry, separation).
    pub analysis: serde_json::Value,
}

/// The probe line of one split after one epoch.
///
/// Never fails: degenerate features (e.g. every class mean equal) make the
/// analysis undefined, which is recorded as `skipped` with the reason and
/// reported on stderr; it is a measurement and must not stop the training.
fn probe_line<B: Backend>(
    model: &Model<B>,
    epoch: usize,
    split: &str,
    ev: &Evaluation,
    classes: usize,
) -> ProbeLine {
    let weights = to_f32(model.head.class_weights());
    let bias = model.head.bias().map(to_f32);
    let analysis = if ev
        .labels
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        < classes
    {
        // A class without samples (tiny subsets): no class mean, no analysis.
        serde_json::json!({ "skipped": "a class has no sample in this split" })
    } else {
        let a = crate::analyze::analyze_arrays(
            &ev.features,
            &ev.labels,
            &weights,
            classes,
            bias.as_deref(),
            model.head.scale(),
        )
        .and_then(|a| Ok(serde_json::to_value(a)?));
        match a {
            Ok(v) => v,
            Err(e) => {
                eprintln!("warning: probe at epoch {epoch} ({split}) skipped: {e:#}");
                serde_json::json!({ "skipped": format!("analysis undefined: {e:#}") })
            }
        }
    };
    ProbeLine {
        epoch,
        split: split.to_string(),
        analysis,
    }
}

/// Tensor values as f32 on the host.
pub(crate) fn to_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A study tells a divergence by its type, not by its words: another
    /// error that mentions "diverged" (a path, a message) is no divergence.
    #[test]
    fn divergence_is_a_typed_error_with_the_old_message() {
        let e: anyhow::Error = Diverged {
            loss: f64::NAN,
            epoch: 3,
            step: 7,
            lr: 0.5,
            last_good: 2,
        }
        .into();
        let e = e.context("study run x");
        assert!(e.downcast_ref::<Diverged>().is_some());
        let text = format!("{e:#}");
        assert!(
            text.contains("non-finite loss (NaN) at epoch 3 step 7 (lr 0.5)")
                && text.contains("after epoch 2"),
            "{text}"
        );
        let other = anyhow::anyhow!("cannot read /runs/diverged/config.toml");
        assert!(other.downcast_ref::<Diverged>().is_none());
    }
}
