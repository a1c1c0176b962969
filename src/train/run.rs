//! The training loop, top to bottom: lock the run directory, load the
//! data, build the model and optimiser (or restore them from the
//! checkpoint), then per epoch: train, evaluate, probe, log, checkpoint; at
//! the end the final weights and the optional exports.
//!
//! The seams the compression systems plug into: auxiliary loss terms
//! ([`super::aux_loss`]), the weight transform every convolution and linear
//! layer reads through ([`crate::nets::WeightTransform`]).

use super::aux_loss::{self, AuxLoss};
use super::checkpoint::{capture, param_shapes, restore};
use super::config::{Normalize, ValidTrainConfig};
use super::eval::{batch_tensors, count_correct, evaluate, export_features};
use super::export::export_safetensors;
use super::model::{self, Model};
use super::probe::probe_line;
use super::regularizer::{Regularizer, weight_stats};
use crate::backend::{BackendJob, run_on, set_threads};
use crate::data::{self, Augment, ImageSet, Normalizer};
use crate::heads::{HeadOps, cross_entropy};
use crate::nets::{Binarize, Identity, NetSpec, WeightTransform};
use crate::run_dir::{
    self, Checkpoint, CheckpointState, DirLock, EpochMetrics, test_accs, write_jsonl,
};
use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::time::Instant;

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

/// Train as configured. With `resume`, continue from `out/checkpoint.bin`.
/// The run directory is locked while the run writes it: a second process
/// on the same `--out` fails at once, naming the holder.
pub fn train(cfg: &ValidTrainConfig, resume: bool) -> Result<TrainOutcome> {
    let out = &cfg.raw.out;
    let ckpt_path = out.join(run_dir::CHECKPOINT);
    if resume && !ckpt_path.exists() {
        bail!(
            "--resume: no checkpoint at {}; start the run without --resume",
            ckpt_path.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let lock = run_dir::lock(out, "run")?;
    train_locked(cfg, resume, &lock)
}

/// [`train`] in a run directory the caller has locked (a study locks a run
/// before it looks at its status). A finished run's `failed.json` of an
/// earlier attempt is removed.
pub fn train_locked(cfg: &ValidTrainConfig, resume: bool, lock: &DirLock) -> Result<TrainOutcome> {
    let out = cfg.raw.out.clone();
    if lock.dir() != out {
        bail!(
            "internal: the lock is on {}, the run is {}",
            lock.dir().display(),
            out.display()
        );
    }
    let ckpt_path = out.join(run_dir::CHECKPOINT);
    if resume && !ckpt_path.exists() {
        bail!(
            "--resume: no checkpoint at {}; start the run without --resume",
            ckpt_path.display()
        );
    }
    let checkpoint = if resume {
        Some(Checkpoint::load(&ckpt_path)?)
    } else {
        if ckpt_path.exists() {
            bail!(
                "{} already holds a run (checkpoint.bin); continue it with \
                 `symfeat train --config {} --resume` or choose another --out",
                out.display(),
                out.join(run_dir::CONFIG).display()
            );
        }
        None
    };
    for p in crate::atomic::remove_stale_temps(&out, &run_dir::RUN_FILES)
        .with_context(|| format!("cannot clean up output directory {}", out.display()))?
    {
        eprintln!("removed {}, left by an interrupted write", p.display());
    }
    // A resume rewrites config.toml only once the checkpoint fits the model
    // (see `TrainJob::run`): a failed attempt leaves the run as it was.
    if checkpoint.is_none() {
        crate::atomic::write(&out.join(run_dir::CONFIG), cfg.raw.to_toml()?.as_bytes())?;
    }

    let Prepared {
        train_set,
        test_set,
        norm,
        spec,
    } = prepare(cfg)?;
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
    let failed = out.join(run_dir::FAILED);
    if failed.exists() {
        std::fs::remove_file(&failed)
            .with_context(|| format!("cannot remove {}", failed.display()))?;
    }
    Ok(TrainOutcome { history, out })
}

/// What a run of a configuration trains and evaluates on: its data (cut
/// to `train_limit` / `test_limit`), the normaliser fitted on its training
/// set, and its backbone's spec.
pub struct Prepared {
    /// The training set.
    pub train_set: ImageSet,
    /// The test set.
    pub test_set: ImageSet,
    /// Input normalisation.
    pub norm: Normalizer,
    /// The backbone to build.
    pub spec: NetSpec,
}

/// Load the data of `cfg` and check its images against the net.
pub fn prepare(cfg: &ValidTrainConfig) -> Result<Prepared> {
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
        kept: cfg.raw.channels_kept.clone(),
        binary: cfg.binary,
    };
    spec.check().context("net")?;
    Ok(Prepared {
        train_set,
        test_set,
        norm,
        spec,
    })
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

/// Seed of the augmentation stream of one epoch.
fn augment_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed.rotate_left(17) ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// What the epochs of a run share.
struct Loop<'a, B: AutodiffBackend> {
    cfg: &'a ValidTrainConfig,
    train_set: &'a ImageSet,
    test_set: &'a ImageSet,
    norm: &'a Normalizer,
    device: B::Device,
    classes: usize,
    aux: Vec<Box<dyn AuxLoss<B>>>,
    /// What the layers read in training, and in evaluation.
    transform: Box<dyn WeightTransform<B>>,
    eval_transform: Box<dyn WeightTransform<B::InnerBackend>>,
    /// The probe's fixed training subset: the first images in file order.
    probe_train: Vec<usize>,
}

/// The sums of one training epoch.
struct EpochSums {
    loss: f64,
    correct: i64,
    lr: f64,
    /// Per auxiliary term with a `log_key`: the sum of its values over steps.
    logged: Vec<(&'static str, f64)>,
    steps: usize,
    /// A binary run's weight signs at the start of the epoch.
    signs_before: Option<Vec<Vec<bool>>>,
}

impl<B: AutodiffBackend> Loop<'_, B> {
    /// The learning-rate factor of `epoch` after a plateau (lr x `gamma`
    /// for `plateau_anneal_epochs` epochs), or `None` when the run is over.
    fn plateau_factor(&self, epoch: usize, history: &[EpochMetrics]) -> Option<f64> {
        let raw = &self.cfg.raw;
        let Some((k, c)) = raw.plateau(&test_accs(history)) else {
            return Some(1.0);
        };
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
        (epoch < k + raw.plateau_anneal_epochs).then_some(raw.gamma)
    }

    /// A binary run: set ReCU's tau of `epoch` on the model, and return the
    /// weights' signs before the epoch (None for a float run).
    fn start_binary_epoch(
        &self,
        model: &mut Model<B>,
        epoch: usize,
    ) -> Result<Option<Vec<Vec<bool>>>> {
        if !self.cfg.binary.binarizes() {
            return Ok(None);
        }
        let tau = crate::binary::tau(epoch, self.cfg.raw.epochs, self.cfg.tau);
        model.net.set_tau(tau);
        let rows = crate::binary::layer_rows(&model.net)?;
        Ok(Some(crate::binary::diagnostics::signs(&rows)))
    }

    /// A binary run: ReCU's diagnostics after `epoch` into `m` (and a line
    /// on stderr).
    fn binary_diagnostics(
        &self,
        valid: &Model<B::InnerBackend>,
        epoch: usize,
        before: Option<&[Vec<bool>]>,
        m: &mut EpochMetrics,
    ) -> Result<()> {
        let binary = self.cfg.binary;
        if !binary.binarizes() {
            return Ok(());
        }
        let tau = crate::binary::tau(epoch, self.cfg.raw.epochs, self.cfg.tau);
        let rows = crate::binary::layer_rows(&valid.net)?;
        let d = crate::binary::diagnostics::diagnose(&rows, tau, binary == Binarize::Recu, before);
        m.tau = Some(tau);
        m.dead_weight_fraction = Some(d.dead_weight_fraction);
        m.frozen_sign_fraction = d.frozen_sign_fraction;
        m.quant_error = Some(d.quant_error);
        m.weight_entropy = Some(d.weight_entropy);
        eprintln!(
            "  {}: tau {tau:.4}, dead (|w1| > Q(tau)) {:.2}%, signs unchanged {:.2}%, quantisation error {:.4}, sign entropy {:.4} bits",
            binary.name(),
            100.0 * d.dead_weight_fraction,
            100.0 * d.frozen_sign_fraction.unwrap_or(f64::NAN),
            d.quant_error,
            d.weight_entropy
        );
        Ok(())
    }

    /// One epoch of SGD steps; `model` comes back trained.
    fn train_epoch<O: Optimizer<Model<B>, B>>(
        &self,
        mut model: Model<B>,
        optim: &mut O,
        state: &mut CheckpointState,
        epoch: usize,
        lr_factor: f64,
    ) -> Result<(Model<B>, EpochSums)> {
        let raw = &self.cfg.raw;
        let n = self.train_set.n;
        let steps_per_epoch = n.div_ceil(raw.batch);
        let aug = Augment {
            crop_pad: 4,
            flip: true,
        };
        let signs_before = self.start_binary_epoch(&mut model, epoch)?;
        let order = data::epoch_order(n, raw.seed, epoch);
        let mut rng = augment_rng(raw.seed, epoch);
        let bar = progress_bar(steps_per_epoch, epoch, raw.epochs);
        let mut sums = EpochSums {
            loss: 0.0,
            correct: 0,
            lr: raw.lr,
            logged: self
                .aux
                .iter()
                .filter_map(|t| t.log_key())
                .map(|k| (k, 0.0))
                .collect(),
            steps: 0,
            signs_before,
        };
        let mut buf = Vec::new();
        for (step, idx) in order.chunks(raw.batch).enumerate() {
            let lr = lr_factor
                * self.cfg.schedule.lr(
                    raw.lr,
                    state.global_step,
                    steps_per_epoch,
                    raw.epochs,
                    raw.warmup_epochs,
                );
            let augment = self.cfg.augment.then_some((&aug, &mut rng));
            let (x, y) = batch_tensors::<B>(
                self.train_set,
                idx,
                self.norm,
                augment,
                &mut buf,
                &self.device,
            );
            let features = model.features_with(x, &*self.transform);
            let logits = model
                .head
                .train_logits(features.clone(), y.clone(), state.global_step);
            // Accuracy from the prediction logits: a margin head's training
            // logits penalise the target and would understate it.
            let pred_logits = model.head.logits(features.clone().detach());
            let mut loss = cross_entropy(logits, y.clone());
            let mut logged = sums.logged.iter_mut();
            for term in &self.aux {
                let t = term.loss(&model, &features, &y);
                if term.log_key().is_some()
                    && let Some(slot) = logged.next()
                {
                    let v: f32 = t.clone().into_scalar().elem();
                    slot.1 += v as f64;
                }
                loss = loss + t;
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
            for term in &self.aux {
                model = term.after_step(model, features.clone(), y.clone());
            }
            sums.loss += loss_value as f64 * idx.len() as f64;
            sums.correct += count_correct(pred_logits, y);
            sums.lr = lr;
            sums.steps += 1;
            state.global_step += 1;
            bar.inc(1);
            if step % 20 == 0 {
                bar.set_message(format!(
                    "loss {:.4}",
                    sums.loss / ((step + 1) * raw.batch).min(n) as f64
                ));
            }
        }
        bar.finish_and_clear();
        Ok((model, sums))
    }

    /// After an epoch: evaluate on the test set, probe the geometry, log,
    /// and append to the state's history and probe lines.
    fn end_epoch(
        &self,
        model: &Model<B>,
        state: &mut CheckpointState,
        epoch: usize,
        sums: EpochSums,
        start: Instant,
    ) -> Result<()> {
        let raw = &self.cfg.raw;
        let n = self.train_set.n;
        let train_seconds = start.elapsed().as_secs_f64();
        let valid = model.valid();
        let all_test: Vec<usize> = (0..self.test_set.n).collect();
        let test_eval = evaluate(
            &valid,
            &*self.eval_transform,
            self.test_set,
            &all_test,
            self.norm,
            raw.eval_batch,
            &self.device,
        )?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr: sums.lr,
            train_loss: sums.loss / n as f64,
            train_acc: sums.correct as f64 / n as f64,
            test_loss: test_eval.loss,
            test_acc: test_eval.acc,
            seconds: start.elapsed().as_secs_f64(),
            images_per_s: n as f64 / train_seconds.max(1e-9),
            reg_loss: None,
            sparsity: None,
            weight_entropy: None,
            tau: None,
            dead_weight_fraction: None,
            frozen_sign_fraction: None,
            quant_error: None,
        };
        let mut m = m;
        self.binary_diagnostics(&valid, epoch, sums.signs_before.as_deref(), &mut m)?;
        if self.cfg.regularizer.0 != Regularizer::None {
            let (sparsity, entropy) = weight_stats(&valid)?;
            m.sparsity = Some(sparsity);
            m.weight_entropy = Some(entropy);
            m.reg_loss = sums
                .logged
                .iter()
                .find(|(k, _)| *k == "reg_loss")
                .map(|(_, v)| v / sums.steps.max(1) as f64);
            eprintln!(
                "  {}: term {:.4}, sparsity {:.2}%, weight entropy {:.2} bits",
                self.cfg.regularizer.0.name(),
                m.reg_loss.unwrap_or(f64::NAN),
                100.0 * sparsity,
                entropy
            );
        }
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
                &*self.eval_transform,
                self.train_set,
                &self.probe_train,
                self.norm,
                raw.eval_batch,
                &self.device,
            )?;
            for (split, ev) in [("test", &test_eval), ("train", &train_eval)] {
                state
                    .probe
                    .push(probe_line(&valid, epoch + 1, split, ev, self.classes)?);
            }
        }
        state.history.push(m);
        state.epochs_done = epoch + 1;
        Ok(())
    }
}

fn progress_bar(steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
    bar
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
        let classes = train_set.num_classes;
        let mut model = model::build_seeded::<B>(cfg, &spec, classes, raw.seed, &device)?;
        let mut optim =
            super::optim::sgd(raw.momentum, raw.nesterov, raw.weight_decay).init::<B, Model<B>>();
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
            let path = out.join(run_dir::CHECKPOINT);
            (model, optim, state) = restore(ck, &path, raw, model, optim, &device)?;
            crate::atomic::write(&out.join(run_dir::CONFIG), raw.to_toml()?.as_bytes())?;
            eprintln!(
                "resuming after epoch {} (step {})",
                state.epochs_done, state.global_step
            );
        }
        let lp = Loop {
            cfg,
            train_set: &train_set,
            test_set: &test_set,
            norm: &norm,
            classes,
            aux: aux_loss::for_run(cfg, &model),
            // The stored weights; binary and fake-quantised training choose
            // their transforms here.
            transform: Box::new(Identity),
            eval_transform: Box::new(Identity),
            probe_train: (0..train_set.n.min(raw.probe_train_samples)).collect(),
            device,
        };
        for epoch in state.epochs_done..raw.epochs {
            let Some(lr_factor) = lp.plateau_factor(epoch, &state.history) else {
                break;
            };
            let start = Instant::now();
            let sums;
            (model, sums) = lp.train_epoch(model, &mut optim, &mut state, epoch, lr_factor)?;
            lp.end_epoch(&model, &mut state, epoch, sums, start)?;
            let ck = capture(&state, &model, &optim)?;
            // Metrics first, then the checkpoint: a crash in between re-runs
            // the epoch on resume and rewrites the same line.
            write_jsonl(&out.join(run_dir::METRICS), &state.history)?;
            if raw.probe {
                write_jsonl(&out.join(run_dir::PROBE), &state.probe)?;
            }
            ck.save(&out.join(run_dir::CHECKPOINT))?;
        }

        let valid = model.valid();
        export_safetensors(&valid, &out.join(run_dir::WEIGHTS))?;
        if cfg.binary.binarizes() {
            crate::binary::packed::write(&valid, &out.join(run_dir::PACKED))?;
        }
        if raw.export_features {
            export_features(
                &valid,
                &*lp.eval_transform,
                &test_set,
                &norm,
                raw.eval_batch,
                &lp.device,
                &out,
            )?;
        }
        Ok(state.history)
    }
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
