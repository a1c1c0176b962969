//! The pruning schedule of Molchanov et al.'s code (field notes §8.4), on
//! any backend: every minibatch a forward pass through the gates, the
//! backward pass, the unit scores, an SGD step; every `every` minibatches
//! the scores averaged over them and mixed with the earlier rounds
//! (`mix x old + (1 - mix) x new`), ranked globally across groups (no
//! per-layer normalisation), and the `per_round` lowest units removed
//! (their gates set to 0), until the cost falls to each target in turn.
//!
//! A removed unit's gate is 0 for the rest of the run, so its activation
//! and its weights' loss gradient are exactly 0: the authors' re-zeroing
//! of pruned weights and clearing of their momentum is not needed (the
//! weights are dropped at the rebuild). Every group keeps at least one
//! unit. The auxiliary losses of a run (center loss, regulariser) are not
//! used while pruning; the fine-tuning run uses its configuration.

use super::criterion::{Criterion, UnitWeights, weight_scores};
use super::gates::Gates;
use super::rebuild::{Cost, compose, cost_of};
use crate::data::{self, Augment, ImageSet, Normalizer};
use crate::heads::{HeadOps, cross_entropy};
use crate::nets::{ChannelGroup, NetSpec};
use crate::run_dir::Checkpoint;
use crate::statistics::{pearson, spearman};
use crate::tensors::{NamedTensor, channel_indices, collect, replace};
use crate::train::eval::{batch_tensors, host_f32};
use crate::train::{Model, ValidTrainConfig, load_model, model};
use anyhow::{Result, bail};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the cost targets count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Multiply-accumulates.
    Flops,
    /// Parameters.
    Params,
}

/// The schedule's settings.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// The criterion.
    pub criterion: Criterion,
    /// What the targets count.
    pub target_kind: TargetKind,
    /// Fractions of the base model's cost to stop at, descending.
    pub targets: Vec<f64>,
    /// Units removed per round.
    pub per_round: usize,
    /// Minibatches per round.
    pub every: usize,
    /// Weight of the earlier rounds' scores.
    pub mix: f64,
    /// SGD learning rate while pruning.
    pub lr: f64,
    /// SGD momentum while pruning.
    pub momentum: f64,
    /// Minibatch size.
    pub batch: usize,
    /// Seed (data order, random criterion, oracle units).
    pub seed: u64,
    /// Units for the oracle check (0: none).
    pub oracle: usize,
    /// Minibatches of its fixed batch set.
    pub oracle_batches: usize,
}

/// One pruning round, as `prune.jsonl` holds it.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    /// Round (1-based).
    pub step: usize,
    /// Minibatches so far.
    pub batches: usize,
    /// Mean training loss over the round's minibatches.
    pub loss: f64,
    /// Cost after the round.
    #[serde(flatten)]
    pub cost: Cost,
    /// Units kept per group.
    pub kept: BTreeMap<String, usize>,
}

/// The model when a target was reached: its (full-shaped, gated) tensors
/// and the channels kept, per group, relative to the base.
pub struct Snapshot {
    /// The target fraction.
    pub target: f64,
    /// Kept channel indices per group (into the base model's groups).
    pub keep: Vec<Vec<usize>>,
    /// Cost of the pruned model.
    pub cost: Cost,
    /// The rounds it took.
    pub step: usize,
    /// The tensors of the model at that point.
    pub tensors: Vec<NamedTensor>,
}

/// The oracle check (the paper's correlation of criteria with the true
/// importance).
#[derive(Debug, Clone, Serialize)]
pub struct Oracle {
    /// Units measured.
    pub units: usize,
    /// Minibatches of the fixed batch set.
    pub batches: usize,
    /// Loss of the unpruned model on it.
    pub base_loss: f64,
    /// Per criterion: Spearman and Pearson correlation with `(L_k - L)^2`.
    pub correlations: BTreeMap<String, Correlation>,
}

/// A criterion against the oracle.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Correlation {
    /// Spearman's rank correlation.
    pub spearman: f64,
    /// Pearson's correlation.
    pub pearson: f64,
}

/// What the job returns.
pub struct Outcome {
    /// Per round.
    pub steps: Vec<StepLine>,
    /// One per target, in order.
    pub snapshots: Vec<Snapshot>,
    /// The oracle check, if asked.
    pub oracle: Option<Oracle>,
    /// The base model's cost.
    pub base_cost: Cost,
}

/// The pruning job (see the module docs).
pub struct Job<'a> {
    /// The base run's configuration.
    pub cfg: &'a ValidTrainConfig,
    /// Its backbone.
    pub spec: NetSpec,
    /// Its training set.
    pub train: &'a ImageSet,
    /// Its normaliser.
    pub norm: &'a Normalizer,
    /// Its checkpoint and where it was read from.
    pub checkpoint: (Checkpoint, PathBuf),
    /// The schedule.
    pub schedule: &'a Schedule,
}

/// A producer tensor read to the host.
pub(super) struct Held {
    /// Values.
    pub(super) w: Vec<f32>,
    /// Gradient.
    pub(super) g: Option<Vec<f32>>,
    /// Shape.
    pub(super) shape: Vec<usize>,
}

/// Producers' weights and gradients, by parameter path.
struct ProducerTensors<'a, B: AutodiffBackend> {
    grads: Option<&'a B::Gradients>,
    want: &'a [String],
    path: Vec<String>,
    out: BTreeMap<String, Held>,
    error: Option<String>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ProducerTensors<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let name = self.path.join(".");
        if !self.want.contains(&name) {
            return;
        }
        let t = param.val();
        let shape = t.dims().to_vec();
        let g = self.grads.and_then(|grads| t.grad(grads));
        let w = host_f32(t.inner());
        let g = g.map(host_f32).transpose();
        match (w, g) {
            (Ok(w), Ok(g)) => {
                self.out.insert(name, Held { w, g, shape });
            }
            (Err(e), _) | (_, Err(e)) => {
                self.error.get_or_insert(e.to_string());
            }
        }
    }
}

/// The backbone's parameter prefix in a model's tensor paths (`net.Cnn.`).
fn net_prefix<B: Backend>(model: &Model<B>) -> &'static str {
    match &model.net {
        crate::nets::Backbone::Mlp(_) => "net.Mlp.",
        crate::nets::Backbone::Cnn(_) => "net.Cnn.",
        crate::nets::Backbone::Lenet(_) => "net.Lenet.",
        crate::nets::Backbone::Resnet(_) => "net.Resnet.",
        crate::nets::Backbone::BinaryMlp(_) => "net.BinaryMlp.",
        crate::nets::Backbone::BinaryCnn(_) => "net.BinaryCnn.",
        crate::nets::Backbone::BinaryResnet(_) => "net.BinaryResnet.",
    }
}

/// The producers' tensor paths of `groups` (weights and biases).
pub(super) fn producer_names<B: Backend>(model: &Model<B>, groups: &[ChannelGroup]) -> Vec<String> {
    let prefix = net_prefix(model);
    groups
        .iter()
        .flat_map(|g| g.producers.iter())
        .flat_map(|p| [format!("{prefix}{p}.weight"), format!("{prefix}{p}.bias")])
        .collect()
}

/// The tensors `want` of `model` on the host, with their gradients from
/// `grads` if given.
pub(super) fn producer_tensors<B: AutodiffBackend>(
    model: &Model<B>,
    want: &[String],
    grads: Option<&B::Gradients>,
) -> Result<BTreeMap<String, Held>> {
    let mut v = ProducerTensors::<B> {
        grads,
        want,
        path: vec![],
        out: BTreeMap::new(),
        error: None,
    };
    model.visit(&mut v);
    match v.error {
        Some(e) => bail!(e),
        None => Ok(v.out),
    }
}

/// Hutchinson's estimate of the Hessian diagonal of the minibatch loss on
/// the tensors `held` (Bekas et al. 2007): `h = v * (H v)` with a
/// Rademacher vector `v` on those tensors, `H v` by central differences of
/// the gradient, `(g(w + e v) - g(w - e v)) / 2e`, with `e` 1 % of each
/// tensor's RMS (two more forward and backward passes). Unbiased for the
/// diagonal of the Hessian restricted to those tensors; noisy per
/// minibatch, averaged over a round like the other scores.
pub(super) fn hessian_diagonal<B: AutodiffBackend>(
    model: &Model<B>,
    held: &BTreeMap<String, Held>,
    loss_of: &dyn Fn(&Model<B>) -> Tensor<B, 1>,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Result<BTreeMap<String, Vec<f32>>> {
    let mut probes: BTreeMap<String, (Vec<f32>, f32)> = BTreeMap::new();
    for (name, h) in held {
        let rms = (h.w.iter().map(|x| x * x).sum::<f32>() / h.w.len().max(1) as f32).sqrt();
        let e = if rms > 0.0 { 1e-2 * rms } else { 1e-4 };
        let v: Vec<f32> = (0..h.w.len())
            .map(|_| if rng.r#gen::<bool>() { 1.0 } else { -1.0 })
            .collect();
        probes.insert(name.clone(), (v, e));
    }
    let want: Vec<String> = held.keys().cloned().collect();
    let grad_at = |sign: f32| -> Result<BTreeMap<String, Held>> {
        let values: BTreeMap<String, Vec<f32>> = held
            .iter()
            .map(|(n, h)| {
                let (v, e) = &probes[n];
                let w = h.w.iter().zip(v).map(|(w, v)| w + sign * e * v).collect();
                (n.clone(), w)
            })
            .collect();
        let moved = replace(model.clone(), &values, device)?;
        let grads = loss_of(&moved).backward();
        producer_tensors(&moved, &want, Some(&grads))
    };
    let (plus, minus) = (grad_at(1.0)?, grad_at(-1.0)?);
    Ok(probes
        .into_iter()
        .map(|(n, (v, e))| {
            let gp = plus[&n].g.as_deref().unwrap_or(&[]);
            let gm = minus[&n].g.as_deref().unwrap_or(&[]);
            let h = v
                .iter()
                .enumerate()
                .map(|(i, v)| match (gp.get(i), gm.get(i)) {
                    (Some(a), Some(b)) => v * (a - b) / (2.0 * e),
                    _ => 0.0,
                })
                .collect();
            (n, h)
        })
        .collect())
}

/// The per-unit scores of `criterion` from one backward pass (`grads`),
/// per group. `loss_of` recomputes the minibatch's loss for a model
/// (`taylor-so`'s Hessian-vector products).
pub(super) fn batch_scores<B: AutodiffBackend>(
    criterion: Criterion,
    model: &Model<B>,
    groups: &[ChannelGroup],
    gates: &Gates<B>,
    grads: Option<&B::Gradients>,
    rng: &mut ChaCha8Rng,
    loss_of: &dyn Fn(&Model<B>) -> Tensor<B, 1>,
) -> Result<Vec<Vec<f64>>> {
    match criterion {
        Criterion::Random => Ok(groups
            .iter()
            .map(|g| (0..g.channels).map(|_| rng.r#gen::<f64>()).collect())
            .collect()),
        Criterion::TaylorFoBn => {
            let grads = grads.ok_or_else(|| anyhow::anyhow!("internal: no gradients"))?;
            groups
                .iter()
                .zip(gates.tensors())
                .map(|(g, z)| {
                    let sites = if g.tied { g.producers.len().max(1) } else { 1 } as f64;
                    Ok(match z.grad(grads) {
                        Some(d) => host_f32(d)?
                            .iter()
                            .map(|d| (*d as f64).powi(2) / sites)
                            .collect(),
                        None => vec![0.0; g.channels],
                    })
                })
                .collect()
        }
        Criterion::TaylorFo | Criterion::TaylorSo | Criterion::Weight => {
            let prefix = net_prefix(model);
            let want = producer_names(model, groups);
            let with_grads = criterion != Criterion::Weight;
            let held = producer_tensors(model, &want, if with_grads { grads } else { None })?;
            let hess = match criterion {
                Criterion::TaylorSo => {
                    let device = model
                        .devices()
                        .into_iter()
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("internal: a model on no device"))?;
                    Some(hessian_diagonal(model, &held, loss_of, rng, &device)?)
                }
                _ => None,
            };
            Ok(groups
                .iter()
                .map(|g| {
                    let tensors: Vec<UnitWeights<'_>> = g
                        .producers
                        .iter()
                        .flat_map(|p| ["weight", "bias"].map(|k| format!("{prefix}{p}.{k}")))
                        .filter_map(|n| held.get(&n).map(|h| (n, h)))
                        .map(|(n, h)| UnitWeights {
                            w: &h.w,
                            g: h.g.as_deref(),
                            h: hess.as_ref().and_then(|m| m.get(&n)).map(Vec::as_slice),
                            // A rank-2 producer is a linear layer's `[in, out]`.
                            channels: channel_indices(&h.shape, h.shape.len() == 2),
                        })
                        .collect();
                    weight_scores(criterion, g.channels, &tensors)
                })
                .collect())
        }
    }
}

/// The kept indices of `alive`.
fn keep_of(alive: &[Vec<bool>]) -> Vec<Vec<usize>> {
    alive
        .iter()
        .map(|a| (0..a.len()).filter(|&i| a[i]).collect())
        .collect()
}

fn fraction(cost: &Cost, base: &Cost, kind: TargetKind) -> f64 {
    match kind {
        TargetKind::Flops => cost.macs as f64 / base.macs as f64,
        TargetKind::Params => cost.params as f64 / base.params as f64,
    }
}

impl crate::backend::BackendJob for Job<'_> {
    type Output = Outcome;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Outcome> {
        let Job {
            cfg,
            spec,
            train,
            norm,
            checkpoint,
            schedule: s,
        } = self;
        B::seed(&device, s.seed);
        let classes = train.num_classes;
        let model = model::build::<B>(cfg, &spec, classes, &device)?;
        let mut model = load_model(checkpoint.0, &checkpoint.1, &cfg.raw, model, &device)?;
        let groups = model.net.channel_groups();
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let mut alive: Vec<Vec<bool>> = groups.iter().map(|g| vec![true; g.channels]).collect();
        let base_cost = cost_of(cfg, &spec, classes)?;
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0x5052_554E);
        let oracle = if s.oracle > 0 {
            Some(oracle::<B>(
                &model, &groups, &names, train, norm, s, &device, &mut rng,
            )?)
        } else {
            None
        };
        let mut optim = crate::train::sgd(s.momentum, false, 0.0).init::<B, Model<B>>();
        let units: usize = groups.iter().map(|g| g.channels).sum();
        let bar = ProgressBar::new(units as u64);
        bar.set_style(
            ProgressStyle::with_template("pruning [{bar:30}] {pos}/{len} units removed {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let aug = Augment {
            crop_pad: 4,
            flip: true,
        };
        let mut acc: Vec<Vec<f64>> = groups.iter().map(|g| vec![0.0; g.channels]).collect();
        let mut mixed: Option<Vec<Vec<f64>>> = None;
        let (mut steps, mut snapshots) = (vec![], vec![]);
        let (mut batches, mut round_loss, mut global) = (0usize, 0.0f64, 0usize);
        let mut buf = Vec::new();
        let mut next = 0;
        'epochs: for epoch in 0.. {
            let order = data::epoch_order(train.n, s.seed ^ 0x5052, epoch);
            for idx in order.chunks(s.batch) {
                let augment = cfg.augment.then_some((&aug, &mut rng));
                let (x, y) = batch_tensors::<B>(train, idx, norm, augment, &mut buf, &device);
                let gates = if s.criterion.needs_gate_grad() {
                    Gates::<B>::new(&names, &alive, &device).map(|z| z.require_grad())
                } else {
                    Gates::<B>::removed_only(&names, &alive, &device)
                };
                let loss_of = |m: &Model<B>| {
                    let features = m.features_with(x.clone(), &gates);
                    cross_entropy(m.head.train_logits(features, y.clone(), global), y.clone())
                };
                let loss = loss_of(&model);
                let lv: f32 = loss.clone().into_scalar().elem();
                if !lv.is_finite() {
                    bail!(
                        "pruning diverged: non-finite loss ({lv}) after {batches} minibatches \
                         (lr {}); try a smaller --lr",
                        s.lr
                    );
                }
                let grads = loss.backward();
                let scores = batch_scores(
                    s.criterion,
                    &model,
                    &groups,
                    &gates,
                    Some(&grads),
                    &mut rng,
                    &loss_of,
                )?;
                for (a, sc) in acc.iter_mut().zip(&scores) {
                    for (a, v) in a.iter_mut().zip(sc) {
                        *a += v;
                    }
                }
                let gp = GradientsParams::from_grads(grads, &model);
                model = optim.step(s.lr, model, gp);
                batches += 1;
                global += 1;
                round_loss += lv as f64;
                if batches % s.every != 0 {
                    continue;
                }
                // A round: average, mix, rank, remove.
                let avg: Vec<Vec<f64>> = acc
                    .iter()
                    .map(|a| a.iter().map(|v| v / s.every as f64).collect())
                    .collect();
                let m = match (&mixed, s.criterion) {
                    (Some(old), c) if c != Criterion::Random => old
                        .iter()
                        .zip(&avg)
                        .map(|(o, n)| {
                            o.iter()
                                .zip(n)
                                .map(|(o, n)| s.mix * o + (1.0 - s.mix) * n)
                                .collect()
                        })
                        .collect(),
                    _ => avg,
                };
                for a in acc.iter_mut() {
                    a.iter_mut().for_each(|v| *v = 0.0);
                }
                let mut ranked: Vec<(f64, usize, usize)> = m
                    .iter()
                    .enumerate()
                    .flat_map(|(g, sc)| {
                        let alive = &alive[g];
                        sc.iter()
                            .enumerate()
                            .filter(move |(k, _)| alive[*k])
                            .map(move |(k, v)| (*v, g, k))
                    })
                    .collect();
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
                mixed = Some(m);
                let mut removed = 0;
                let mut cost = cost_of(cfg, &compose(&spec, &keep_of(&alive))?, classes)?;
                // A target of 1 (or one already met) removes nothing: the
                // base model after the same training, a control.
                let met = fraction(&cost, &base_cost, s.target_kind) <= s.targets[next];
                for &(_, g, k) in &ranked {
                    if met || removed == s.per_round {
                        break;
                    }
                    if alive[g].iter().filter(|a| **a).count() <= 1 {
                        continue; // every group keeps one unit
                    }
                    alive[g][k] = false;
                    removed += 1;
                    bar.inc(1);
                    cost = cost_of(cfg, &compose(&spec, &keep_of(&alive))?, classes)?;
                    if fraction(&cost, &base_cost, s.target_kind) <= s.targets[next] {
                        break;
                    }
                }
                let line = StepLine {
                    step: steps.len() + 1,
                    batches,
                    loss: round_loss / s.every as f64,
                    cost,
                    kept: names
                        .iter()
                        .zip(&alive)
                        .map(|(n, a)| (n.clone(), a.iter().filter(|x| **x).count()))
                        .collect(),
                };
                round_loss = 0.0;
                let frac = fraction(&cost, &base_cost, s.target_kind);
                bar.set_message(format!(
                    "{:.1} % of the {} left, loss {:.4}",
                    100.0 * frac,
                    match s.target_kind {
                        TargetKind::Flops => "MACs",
                        TargetKind::Params => "parameters",
                    },
                    line.loss
                ));
                steps.push(line);
                while next < s.targets.len() && frac <= s.targets[next] {
                    let valid = model.valid();
                    snapshots.push(Snapshot {
                        target: s.targets[next],
                        keep: keep_of(&alive),
                        cost,
                        step: steps.len(),
                        tensors: collect(&valid)?,
                    });
                    // Printed also when stderr is not a terminal (the bar
                    // is hidden then, and its println with it).
                    bar.suspend(|| {
                        eprintln!(
                            "target {} reached after {} rounds ({batches} minibatches): {} MACs, {} parameters",
                            s.targets[next],
                            steps.len(),
                            cost.macs,
                            cost.params
                        )
                    });
                    next += 1;
                }
                if next == s.targets.len() {
                    break 'epochs;
                }
                if removed == 0 && !met {
                    bail!(
                        "target {} cannot be reached: every group is down to one unit at {:.1} % of the base cost",
                        s.targets[next],
                        100.0 * frac
                    );
                }
            }
        }
        bar.finish_and_clear();
        Ok(Outcome {
            steps,
            snapshots,
            oracle,
            base_cost,
        })
    }
}

/// Images and labels of one minibatch.
type Batch<B> = (Tensor<B, 4>, Tensor<B, 1, Int>);

/// The oracle check on the base model: for `s.oracle` random units, the
/// loss change when the unit alone is gated off, on a fixed batch set (the
/// first `s.oracle_batches` minibatches of the training set in file
/// order, no augmentation, the model in evaluation mode), against each
/// criterion's score on the same batches (from training-mode gradients, as
/// while pruning).
#[allow(clippy::too_many_arguments)]
fn oracle<B: AutodiffBackend>(
    model: &Model<B>,
    groups: &[ChannelGroup],
    names: &[String],
    train: &ImageSet,
    norm: &Normalizer,
    s: &Schedule,
    device: &B::Device,
    rng: &mut ChaCha8Rng,
) -> Result<Oracle> {
    let all: Vec<(usize, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, gr)| (0..gr.channels).map(move |k| (g, k)))
        .collect();
    let mut units = all.clone();
    // A seeded partial shuffle: the first `n` are the sample.
    let n = s.oracle.min(units.len());
    for i in 0..n {
        let j = rng.gen_range(i..units.len());
        units.swap(i, j);
    }
    units.truncate(n);
    let full: Vec<Vec<bool>> = groups.iter().map(|g| vec![true; g.channels]).collect();
    let idx: Vec<usize> = (0..(s.oracle_batches * s.batch).min(train.n)).collect();
    let mut buf = Vec::new();
    let batches: Vec<Batch<B>> = idx
        .chunks(s.batch)
        .map(|c| batch_tensors::<B>(train, c, norm, None, &mut buf, device))
        .collect();
    // The true importance of the model as it is used: evaluation mode
    // (BatchNorm's running statistics), no autodiff graph (forward passes
    // on the autodiff backend without a backward pass keep their graphs:
    // ResNet-20's 400 of them ran out of memory).
    let valid = model.valid();
    let inner: Vec<Batch<B::InnerBackend>> = batches
        .iter()
        .map(|(x, y)| (x.clone().inner(), y.clone().inner()))
        .collect();
    let loss_with = |alive: &[Vec<bool>]| -> f64 {
        let gates = Gates::<B::InnerBackend>::new(names, alive, device);
        let mut total = 0.0;
        for (x, y) in &inner {
            let logits = valid.head.logits(valid.features_with(x.clone(), &gates));
            let l: f32 = cross_entropy(logits, y.clone()).into_scalar().elem();
            total += l as f64;
        }
        total / batches.len() as f64
    };
    let base_loss = loss_with(&full);
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("oracle [{bar:30}] {pos}/{len} units")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut truth = Vec::with_capacity(n);
    for &(g, k) in &units {
        let mut alive = full.clone();
        alive[g][k] = false;
        truth.push((loss_with(&alive) - base_loss).powi(2));
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Every criterion's scores, averaged over the same batches.
    let mut scores: BTreeMap<&'static str, Vec<Vec<f64>>> = BTreeMap::new();
    for (x, y) in &batches {
        let gates = Gates::<B>::new(names, &full, device).map(|z| z.require_grad());
        let loss_of = |m: &Model<B>| {
            let logits = m.head.logits(m.features_with(x.clone(), &gates));
            cross_entropy(logits, y.clone())
        };
        let grads = loss_of(model).backward();
        for c in Criterion::ALL {
            let sc = batch_scores(c, model, groups, &gates, Some(&grads), rng, &loss_of)?;
            let e = scores
                .entry(c.name())
                .or_insert_with(|| groups.iter().map(|g| vec![0.0; g.channels]).collect());
            for (a, v) in e.iter_mut().zip(&sc) {
                for (a, v) in a.iter_mut().zip(v) {
                    *a += v;
                }
            }
        }
    }
    let correlations = scores
        .into_iter()
        .map(|(name, sc)| {
            let est: Vec<f64> = units.iter().map(|&(g, k)| sc[g][k]).collect();
            (
                name.to_string(),
                Correlation {
                    spearman: spearman(&est, &truth),
                    pearson: pearson(&est, &truth),
                },
            )
        })
        .collect();
    Ok(Oracle {
        units: n,
        batches: batches.len(),
        base_loss,
        correlations,
    })
}
