//! The study report: read every run of a study directory, measure
//! stability and geometry per head, draw the figures, write `report.html`
//! (self-contained), `summary.json` and `summary.md`.

use super::claims::{self, Claim};
use super::html;
use super::landscape::{LandscapeGrid, class_landscape};
use super::plot::{Band, CurvesFigure, LandscapeFigure, ScatterFigure, png_and_svg};
use crate::geometry::Matrix;
use crate::heads::HeadKind;
use crate::npy::{MatrixReader, read_labels, read_vector};
use crate::statistics::mean;
use crate::statistics::{Convergence, MeanCi, Trend, convergence};
use crate::study::stability::{RunStability, measure};
use crate::study::{DIVERGED, STUDY_FILE, StudyConfig, run_dirs};
use crate::train::{EpochMetrics, ProbeLine, TrainConfig};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
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

/// Tolerance under which a measured condition holds.
pub const CONDITION_TOL: f64 = 0.01;

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
        match self.convergence {
            Some(c) if c.converged() => match crate::train::plateau(&self.config, &self.history) {
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

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: invalid JSON", path.display(), i + 1))
        })
        .collect()
}

/// Whether the head's logits see only `w / |w|` (all but the linear ones).
fn cosine_head(head: &str) -> bool {
    !matches!(
        HeadKind::parse(head),
        Some(HeadKind::Softmax | HeadKind::Center)
    )
}

/// Whether the head's class weights are learned (the symmetrical layer
/// learns its plane; the polytope heads are fixed).
pub fn learnable(head: &str) -> bool {
    !matches!(
        HeadKind::parse(head),
        Some(HeadKind::Polygon | HeadKind::Simplex | HeadKind::Orthoplex | HeadKind::Dcube)
    )
}

fn conditions(dir: &Path, head: &str) -> Option<Conditions> {
    let (w, c, d) = MatrixReader::open(&dir.join("class_weights.npy"), "class weights")
        .and_then(|r| r.read_all())
        .ok()?;
    let mut rows: Vec<Vec<f64>> = w.chunks(d.max(1)).take(c).map(|r| r.to_vec()).collect();
    if cosine_head(head) {
        for r in &mut rows {
            let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            if n > 0.0 {
                r.iter_mut().for_each(|v| *v /= n);
            }
        }
    }
    let m = Matrix::from_rows(&rows).ok()?;
    let s = crate::geometry::collapse::symmetry(&m).ok()?;
    Some(Conditions {
        unit_norm_dev: s.unit_norm_dev,
        mean_weight_norm: s.mean_weight_norm,
        coplanarity: s.coplanarity,
    })
}

/// Read a run directory (None when it has no config yet). `variant` names
/// its study variant (None: the head, with the feature variant if not relu).
pub fn load_run(dir: &Path, variant: Option<&str>) -> Result<Option<RunData>> {
    let cfg = dir.join("config.toml");
    if !cfg.exists() {
        return Ok(None);
    }
    let config = TrainConfig::from_file(&cfg)?;
    let history: Vec<EpochMetrics> = read_jsonl(&dir.join("metrics.jsonl"))?;
    let probe: Vec<ProbeLine> = read_jsonl::<ProbeLine>(&dir.join("probe.jsonl"))?
        .into_iter()
        .filter(|p| p.split == "test")
        .collect();
    let diverged = std::fs::read_to_string(dir.join(DIVERGED)).ok().map(|t| {
        serde_json::from_str::<serde_json::Value>(&t)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(t)
    });
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
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
        conditions: conditions(dir, &config.head),
        config,
        history,
        probe,
        stability: None,
        convergence: None,
        diverged,
    };
    let window = run.tail_window();
    run.stability = measure(&run.history, window, run.diverged.is_some());
    // With `plateau_window`: the test where the trainer found the plateau
    // (before any annealing epochs); else on the last epochs.
    run.convergence = match crate::train::plateau(&run.config, &run.history) {
        Some((_, c)) => Some(c),
        None => {
            let accs: Vec<f64> = run.history.iter().map(|m| m.test_acc).collect();
            convergence(&accs, window, run.config.plateau_slope)
        }
    };
    Ok(Some(run))
}

/// A number from a probe analysis, by JSON path.
fn probe_value(p: &ProbeLine, path: &[&str]) -> Option<f64> {
    let mut v = &p.analysis;
    for k in path {
        v = v.get(k)?;
    }
    v.as_f64()
}

/// The geometry quantities followed over training (test split).
pub const TRAJECTORIES: [(&str, &[&str], &str); 6] = [
    (
        "angle_w_mean",
        &["mean_angle_w_mean_deg"],
        "mean angle(w_c, class mean) [deg]",
    ),
    (
        "angle_w_softmax_center",
        &["mean_angle_w_softmax_center_deg"],
        "mean angle(w_c, softmax center) [deg]",
    ),
    ("nc1", &["nc", "nc1"], "NC1"),
    ("nc3", &["nc", "nc3"], "NC3"),
    (
        "compactness",
        &["compactness_mean_deg"],
        "compactness [deg]",
    ),
    ("separation", &["separation_deg"], "separation [deg]"),
];

/// The measured weight conditions of a variant, over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct VariantConditions {
    /// `max_c ||w_c| - 1|` (after the head's own normalisation).
    pub unit_norm_dev: MeanCi,
    /// `|mean_c w_c|`.
    pub mean_weight_norm: MeanCi,
    /// Energy outside the best plane.
    pub coplanarity: MeanCi,
    /// Unit norm holds (mean deviation < [`CONDITION_TOL`]).
    pub unit: bool,
    /// Zero sum holds.
    pub zero_sum: bool,
    /// Coplanarity holds.
    pub coplanar: bool,
    /// The weights are learned (false: a fixed layout).
    pub learnable: bool,
}

impl VariantConditions {
    /// "unit + zero-sum + coplanar, learned"
    pub fn words(&self) -> String {
        let mut held = vec![];
        if self.unit {
            held.push("unit");
        }
        if self.zero_sum {
            held.push("zero-sum");
        }
        if self.coplanar {
            held.push("coplanar");
        }
        format!(
            "{}; {}",
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(" + ")
            },
            if self.learnable { "learned" } else { "fixed" }
        )
    }
}

/// Per variant (within one dataset and net), over seeds. Intervals:
/// `statistics::MeanCi` (mean and 95 % Student-t half-width).
#[derive(Debug, Clone, Serialize)]
pub struct VariantSummary {
    /// Dataset and net.
    pub group: String,
    /// Variant name.
    pub name: String,
    /// Head.
    pub head: String,
    /// What the head sees (relu, linear, bn).
    pub feature_act: String,
    /// Head parameters given (defaults not repeated).
    pub head_params: BTreeMap<String, f64>,
    /// Runs found (seeds).
    pub runs: usize,
    /// Runs that diverged.
    pub diverged: usize,
    /// Runs that passed the convergence test.
    pub converged_runs: usize,
    /// Per run: "seed k: converged by epoch N" or "not converged by epoch N ...".
    pub convergence: Vec<String>,
    /// Epochs trained.
    pub epochs: MeanCi,
    /// Final test accuracy (runs that did not diverge).
    pub final_acc: MeanCi,
    /// Best test accuracy.
    pub best_acc: MeanCi,
    /// Final mean angle(w_c, class mean), degrees (every run with a probe).
    pub angle_w_mean_deg: MeanCi,
    /// The same over converged runs only (what claim (a) decides on).
    pub angle_w_mean_deg_converged: MeanCi,
    /// Tail stability of converged runs: residual std of the test accuracy
    /// around a line over the last epochs (fraction).
    pub tail_std: MeanCi,
    /// Test-accuracy drops per run (mean).
    pub drops: f64,
    /// Training-loss spikes per run (mean).
    pub loss_spikes: f64,
    /// Conditions of the final weights.
    pub conditions: Option<VariantConditions>,
    /// Final value of each trajectory, by key of [`TRAJECTORIES`].
    pub geometry: BTreeMap<String, MeanCi>,
}

/// The two claims, one decision per symmetrical-layer variant each.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// (a) the layer's weights are the class centers.
    pub weights_are_centers: Vec<Claim>,
    /// (b) its learning curve is more stable than the popular heads'.
    pub more_stable: Vec<Claim>,
}

/// Everything the report says, as `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The question the study answers.
    pub question: String,
    /// The study's description.
    pub description: String,
    /// Settings shared by the runs.
    pub settings: BTreeMap<String, String>,
    /// The decision rules, as stated.
    pub rules: Vec<String>,
    /// The two claims.
    pub claims: Claims,
    /// Per variant.
    pub variants: Vec<VariantSummary>,
    /// Further findings, sentence by sentence.
    pub verdict: Vec<String>,
    /// Runs that were found but had no metrics yet.
    pub unfinished: Vec<String>,
    /// Figures written (stems under `figures/`).
    pub figures: Vec<String>,
}

/// The question at the top of the report.
pub const QUESTION: &str = "Do the class weights of the classification layer sit at the class centers, and does the \
     symmetrical layer (unit, coplanar, zero-sum weights; Kansizoglou et al., IEEE TNNLS 2022) make them so and \
     train more stably than the popular heads?";

fn group_of(r: &RunData) -> String {
    format!("{} / {}", r.config.dataset, r.config.net)
}

fn summarise(runs: &[&RunData], group: &str, name: &str) -> VariantSummary {
    let first = runs[0];
    let ok: Vec<&RunData> = runs
        .iter()
        .copied()
        .filter(|r| r.diverged.is_none())
        .collect();
    let st: Vec<&RunStability> = ok.iter().filter_map(|r| r.stability.as_ref()).collect();
    let col = |f: &dyn Fn(&RunStability) -> f64| -> Vec<f64> { st.iter().map(|s| f(s)).collect() };
    let final_probe =
        |r: &RunData, path: &[&str]| r.probe.last().and_then(|p| probe_value(p, path));
    let mut geometry = BTreeMap::new();
    for (key, path, _) in TRAJECTORIES {
        let v: Vec<f64> = ok.iter().filter_map(|r| final_probe(r, path)).collect();
        if !v.is_empty() {
            geometry.insert(key.to_string(), MeanCi::of(&v));
        }
    }
    let angle_path = TRAJECTORIES[0].1;
    let converged: Vec<&RunData> = ok.iter().copied().filter(|r| r.converged()).collect();
    let conds: Vec<Conditions> = ok.iter().filter_map(|r| r.conditions).collect();
    let conditions = (!conds.is_empty()).then(|| {
        let c = |f: fn(&Conditions) -> f64| MeanCi::of(&conds.iter().map(f).collect::<Vec<_>>());
        let (u, z, p) = (
            c(|c| c.unit_norm_dev),
            c(|c| c.mean_weight_norm),
            c(|c| c.coplanarity),
        );
        VariantConditions {
            unit: u.mean < CONDITION_TOL,
            zero_sum: z.mean < CONDITION_TOL,
            coplanar: p.mean < CONDITION_TOL,
            unit_norm_dev: u,
            mean_weight_norm: z,
            coplanarity: p,
            learnable: learnable(&first.config.head),
        }
    });
    VariantSummary {
        group: group.to_string(),
        name: name.to_string(),
        head: first.config.head.clone(),
        feature_act: first.config.feature_act.clone(),
        head_params: first.config.head_params.clone(),
        runs: runs.len(),
        diverged: runs.len() - ok.len(),
        converged_runs: converged.len(),
        convergence: runs
            .iter()
            .map(|r| format!("seed {}: {}", r.config.seed, r.convergence_words()))
            .collect(),
        epochs: MeanCi::of(
            &ok.iter()
                .map(|r| r.history.len() as f64)
                .collect::<Vec<_>>(),
        ),
        final_acc: MeanCi::of(&col(&|s| s.final_acc)),
        best_acc: MeanCi::of(&col(&|s| s.best_acc)),
        angle_w_mean_deg: MeanCi::of(
            &ok.iter()
                .filter_map(|r| final_probe(r, angle_path))
                .collect::<Vec<_>>(),
        ),
        angle_w_mean_deg_converged: MeanCi::of(
            &converged
                .iter()
                .filter_map(|r| final_probe(r, angle_path))
                .collect::<Vec<_>>(),
        ),
        tail_std: MeanCi::of(
            &converged
                .iter()
                .filter_map(|r| r.convergence.map(|c| c.tail_std))
                .collect::<Vec<_>>(),
        ),
        drops: mean(&col(&|s| s.drops as f64)),
        loss_spikes: mean(&col(&|s| s.loss_spikes as f64)),
        conditions,
        geometry,
    }
}

/// Decide both claims for every symmetrical-layer variant of each group.
fn decide(runs: &[RunData], variants: &[VariantSummary]) -> Claims {
    let mut claims = Claims {
        weights_are_centers: vec![],
        more_stable: vec![],
    };
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.config.seed).collect();
    seeds.sort();
    seeds.dedup();
    let tails = |group: &str, variant: &str| -> Vec<Option<f64>> {
        seeds
            .iter()
            .map(|&s| {
                runs.iter()
                    .find(|r| group_of(r) == group && r.variant == variant && r.config.seed == s)
                    .filter(|r| r.converged())
                    .and_then(|r| r.convergence.map(|c| c.tail_std))
            })
            .collect()
    };
    let groups: std::collections::BTreeSet<&str> =
        variants.iter().map(|v| v.group.as_str()).collect();
    let prefix = |g: &str, name: &str| {
        if groups.len() > 1 {
            format!("{g}: {name}")
        } else {
            name.to_string()
        }
    };
    for v in variants.iter().filter(|v| v.head == "symmetrical") {
        let angles: Vec<f64> = runs
            .iter()
            .filter(|r| group_of(r) == v.group && r.variant == v.name && r.converged())
            .filter_map(|r| {
                r.probe
                    .last()
                    .and_then(|p| probe_value(p, TRAJECTORIES[0].1))
            })
            .collect();
        let mut a = claims::weights_are_centers(&v.name, &angles, v.runs);
        a.variant = prefix(&v.group, &v.name);
        claims.weights_are_centers.push(a);
        let popular: Vec<(String, Vec<Option<f64>>)> = variants
            .iter()
            .filter(|h| {
                h.group == v.group
                    && claims::POPULAR.contains(&h.head.as_str())
                    && h.feature_act == "relu"
            })
            .map(|h| (h.name.clone(), tails(&h.group, &h.name)))
            .collect();
        let mut b = claims::more_stable(&v.name, &tails(&v.group, &v.name), &popular);
        b.variant = prefix(&v.group, &v.name);
        claims.more_stable.push(b);
    }
    claims
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", 100.0 * v)
    } else {
        "n/a".into()
    }
}

/// Further findings in plain words, from the measured numbers.
pub fn verdict(variants: &[VariantSummary]) -> Vec<String> {
    let mut out = vec![];
    for v in variants {
        if v.converged_runs < v.runs - v.diverged {
            out.push(format!(
                "[{}] {}: {} of {} runs converged ({}); its stability figures use converged runs only.",
                v.group,
                v.name,
                v.converged_runs,
                v.runs,
                v.convergence.join("; ")
            ));
        }
        if v.final_acc.mean < 0.3 {
            out.push(format!(
                "[{}] {}: near chance ({}); a flat curve that does not learn is 'stable' and says little.",
                v.group,
                v.name,
                pct(v.final_acc.mean)
            ));
        }
        if v.diverged > 0 {
            out.push(format!(
                "[{}] {}: {} of {} runs diverged.",
                v.group, v.name, v.diverged, v.runs
            ));
        }
    }
    let sym: Vec<&VariantSummary> = variants
        .iter()
        .filter(|v| v.head == "symmetrical")
        .collect();
    for s in &sym {
        if let Some(best) = variants
            .iter()
            .filter(|v| v.group == s.group && v.final_acc.mean.is_finite())
            .max_by(|a, b| a.final_acc.mean.total_cmp(&b.final_acc.mean))
        {
            out.push(format!(
                "[{}] {} reaches {} (± {:.2} pts) against {} for the best variant, {}: the paper claims stability, not accuracy.",
                s.group,
                s.name,
                pct(s.final_acc.mean),
                100.0 * s.final_acc.ci95,
                pct(best.final_acc.mean),
                best.name
            ));
        }
    }
    out
}

/// Mean, min and max over runs of a per-epoch value.
fn band(runs: &[&RunData], label: &str, f: &dyn Fn(&RunData, usize) -> Option<f64>) -> Band {
    let epochs = runs
        .iter()
        .map(|r| r.history.len().max(r.probe.len()))
        .max()
        .unwrap_or(0);
    let mut points = vec![];
    for e in 0..epochs {
        let v: Vec<f64> = runs
            .iter()
            .filter_map(|r| f(r, e))
            .filter(|v| v.is_finite())
            .collect();
        if !v.is_empty() {
            let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            points.push(((e + 1) as f64, mean(&v), lo, hi));
        }
    }
    Band {
        label: label.to_string(),
        points,
    }
}

/// Build the report of the study in `dir`; returns the summary.
pub fn build_report(dir: &Path) -> Result<Summary> {
    let study = StudyConfig::from_file(&dir.join(STUDY_FILE)).ok();
    // Run directory name -> variant, and the variants in study order.
    let specs = study
        .as_ref()
        .and_then(|s| s.runs(dir).ok())
        .unwrap_or_default();
    let variant_of = |d: &Path| -> Option<String> {
        let name = d.file_name()?.to_string_lossy().into_owned();
        specs
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.variant.clone())
    };
    let mut runs = vec![];
    let mut unfinished = vec![];
    for d in run_dirs(dir)? {
        match load_run(&d, variant_of(&d).as_deref())? {
            Some(r) if !r.history.is_empty() || r.diverged.is_some() => runs.push(r),
            Some(r) => unfinished.push(r.name),
            None => {}
        }
    }
    if runs.is_empty() {
        anyhow::bail!(
            "{}: no run has finished an epoch yet; nothing to report",
            dir.display()
        );
    }
    let figdir = dir.join("figures");
    std::fs::create_dir_all(&figdir)
        .with_context(|| format!("cannot create {}", figdir.display()))?;

    let mut order: Vec<String> = specs.iter().map(|r| r.variant.clone()).collect();
    order.extend(runs.iter().map(|r| r.variant.clone()));
    let mut seen = std::collections::BTreeSet::new();
    order.retain(|v| seen.insert(v.clone()));
    let mut groups: Vec<String> = runs.iter().map(group_of).collect();
    groups.sort();
    groups.dedup();
    let mut variants = vec![];
    let mut figures = vec![];
    for (gi, g) in groups.iter().enumerate() {
        let in_group: Vec<&RunData> = runs.iter().filter(|r| &group_of(r) == g).collect();
        let present: Vec<&String> = order
            .iter()
            .filter(|v| in_group.iter().any(|r| &&r.variant == v))
            .collect();
        let by_variant = |v: &str| -> Vec<&RunData> {
            in_group
                .iter()
                .filter(|r| r.variant == v)
                .copied()
                .collect()
        };
        for v in &present {
            variants.push(summarise(&by_variant(v), g, v));
        }
        let suffix = if groups.len() > 1 {
            format!("_{gi}")
        } else {
            String::new()
        };
        let curves = |key: &str,
                      title: &str,
                      y: &str,
                      f: &dyn Fn(&RunData, usize) -> Option<f64>|
         -> Result<String> {
            let series = present.iter().map(|v| band(&by_variant(v), v, f)).collect();
            let fig = CurvesFigure {
                title: format!("{title} ({g})"),
                x_label: "epoch".into(),
                y_label: y.into(),
                series,
            };
            let stem = format!("{key}{suffix}");
            png_and_svg(&figdir.join(&stem), (760, 460), &fig)?;
            Ok(stem)
        };
        figures.push(curves(
            "test_acc",
            "Test accuracy, mean and min-max over seeds",
            "test accuracy",
            &|r, e| r.history.get(e).map(|m| m.test_acc),
        )?);
        figures.push(curves(
            "train_loss",
            "Training loss",
            "mean training loss",
            &|r, e| r.history.get(e).map(|m| m.train_loss),
        )?);
        for (key, path, label) in [TRAJECTORIES[0], TRAJECTORIES[3]] {
            figures.push(curves(key, label, label, &|r, e| {
                r.probe.get(e).and_then(|p| probe_value(p, path))
            })?);
        }
        for v in &present {
            let Some(run) = by_variant(v)
                .into_iter()
                .find(|r| r.diverged.is_none() && r.dir.join("class_weights.npy").exists())
            else {
                continue;
            };
            if let Some(stem) = landscape_figure(run, &figdir, &format!("landscape_{v}{suffix}"))? {
                figures.push(stem);
            }
            if let Some(stem) = scatter_figure(run, &figdir, &format!("scatter_{v}{suffix}"))? {
                figures.push(stem);
            }
        }
    }
    let claims = decide(&runs, &variants);
    let mut verdict = verdict(&variants);
    for c in &claims.more_stable {
        let d: Vec<f64> = c
            .comparisons
            .iter()
            .filter(|x| x.diff.n >= claims::MIN_RUNS)
            .map(|x| x.diff.mean_diff)
            .collect();
        if c.decision == claims::Decision::Inconclusive && !d.is_empty() {
            let worse = d.iter().filter(|x| **x > 0.0).count();
            verdict.push(format!(
                "{}: claim (b) is undecided at this number of seeds; in point estimate its tail std is higher (less stable) than {worse} of {} popular heads'. More seeds (`seeds = [...]`, or `--protocol long`) narrow the intervals.",
                c.variant,
                d.len()
            ));
        }
    }
    let first = &runs[0].config;
    let mut settings = BTreeMap::new();
    settings.insert("epochs".into(), first.epochs.to_string());
    settings.insert(
        "train images".into(),
        first
            .train_limit
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into()),
    );
    settings.insert(
        "test images".into(),
        first
            .test_limit
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into()),
    );
    settings.insert("batch".into(), first.batch.to_string());
    settings.insert(
        "optimizer".into(),
        format!(
            "SGD lr {} momentum {} weight decay {}, schedule {}",
            first.lr, first.momentum, first.weight_decay, first.schedule
        ),
    );
    settings.insert("runs".into(), runs.len().to_string());
    settings.insert(
        "schedule".into(),
        format!(
            "{} warm-up epoch(s), {}; after a plateau {} epoch(s) at lr x {}",
            first.warmup_epochs, first.schedule, first.plateau_anneal_epochs, first.gamma
        ),
    );
    if let Some(s) = &study {
        settings.insert("seeds".into(), format!("{:?}", s.seeds));
        for (h, p) in &s.head_params {
            settings.insert(format!("head_params.{h}"), format!("{p:?}"));
        }
    }
    settings.insert(
        "convergence".into(),
        format!(
            "plateau window {} epochs, slope threshold {} pts/epoch{}",
            runs[0].tail_window(),
            100.0 * first.plateau_slope,
            if first.plateau_window >= 3 {
                ", runs stop when the test passes"
            } else {
                ", runs train every epoch"
            }
        ),
    );
    settings.insert("net".into(), first.net.clone());
    settings.insert("dataset".into(), first.dataset.clone());
    let summary = Summary {
        question: QUESTION.into(),
        rules: rules(),
        claims,
        description: study
            .as_ref()
            .map(|s| s.description.clone())
            .unwrap_or_default(),
        settings,
        variants,
        verdict,
        unfinished,
        figures,
    };
    crate::atomic::write(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    crate::atomic::write(&dir.join("summary.md"), html::markdown(&summary).as_bytes())?;
    crate::atomic::write(
        &dir.join("report.html"),
        html::page(&summary, &runs, &figdir)?.as_bytes(),
    )?;
    Ok(summary)
}

/// The decision rules, stated for the report.
pub fn rules() -> Vec<String> {
    vec![
        format!(
            "Converged: an OLS line through the test accuracy of the last W epochs (W = the plateau window, {TAIL_EPOCHS} without one); \
             not converged when its slope exceeds the threshold and |t| > t(0.90, W - 2) (one-sided, a low bar). With a plateau window, the test \
             is the one that stopped the run (before its annealing epochs). Tail std: the residual std of that line."
        ),
        "Intervals: mean ± t(0.975, n - 1) s / sqrt(n) over seeds (Student t, 95 %).".into(),
        format!(
            "(a) weights are the class centers: over converged runs, the 95 % interval of the final mean angle(w_c, class mean) \
             lies below {}° (supported), above it (not supported), or contains it / fewer than {} converged runs (inconclusive).",
            claims::CENTER_DEG,
            claims::MIN_RUNS
        ),
        format!(
            "(b) more stable than the popular heads ({}, relu features): per head, a paired t interval (Bonferroni over the heads) \
             of the tail-std difference over seeds where both converged: below 0 more stable, above 0 less stable, within ±{:.2} pts \
             equivalent. Supported when more stable than every head; not supported when less stable than or equivalent to one; \
             otherwise inconclusive.",
            claims::POPULAR.join(", "),
            100.0 * claims::EQUIVALENCE
        ),
    ]
}

/// Scale of the run's head from its last probe (cosine heads), and its bias.
fn head_geometry(run: &RunData) -> (Option<f64>, Option<Vec<f64>>) {
    let scale = run.probe.last().and_then(|p| {
        p.analysis
            .get("head")?
            .get("Cosine")?
            .get("scale")?
            .as_f64()
    });
    let bias = read_vector(&run.dir.join("bias.npy"), "bias").ok();
    (scale, if scale.is_some() { None } else { bias })
}

fn landscape_figure(run: &RunData, figdir: &Path, stem: &str) -> Result<Option<String>> {
    let Ok((w, c, d)) = MatrixReader::open(&run.dir.join("class_weights.npy"), "class weights")
        .and_then(|r| r.read_all())
    else {
        return Ok(None);
    };
    let Ok(weights) = Matrix::new(c, d, w) else {
        return Ok(None);
    };
    let (scale, bias) = head_geometry(run);
    let grid = LandscapeGrid {
        radii: 30,
        angles: 120,
        ..Default::default()
    };
    let Ok((l, towards)) = class_landscape(&weights, bias.as_deref(), scale, 0, None, grid) else {
        return Ok(None);
    };
    let fig = LandscapeFigure {
        landscape: &l,
        title: format!("{}: p_0, plane of w_0 and w_{towards}", run.config.head),
        reference: format!("w_{towards}"),
    };
    png_and_svg(&figdir.join(stem), (560, 500), &fig)?;
    Ok(Some(stem.to_string()))
}

fn scatter_figure(run: &RunData, figdir: &Path, stem: &str) -> Result<Option<String>> {
    let Ok(reader) = MatrixReader::open(&run.dir.join("features.npy"), "features") else {
        return Ok(None);
    };
    if reader.cols() != 2 {
        return Ok(None);
    }
    let (x, n, _) = reader.read_all()?;
    let labels = read_labels(&run.dir.join("labels.npy"))?;
    let (w, c, _) =
        MatrixReader::open(&run.dir.join("class_weights.npy"), "class weights")?.read_all()?;
    let step = (n / 3000).max(1); // at most ~3000 points
    let points = (0..n)
        .step_by(step)
        .map(|i| (x[2 * i], x[2 * i + 1], labels[i]))
        .collect();
    let weights = (0..c).map(|k| (w[2 * k], w[2 * k + 1])).collect();
    let fig = ScatterFigure {
        title: format!("{}: 2-D test features and class weights", run.config.head),
        points,
        weights,
    };
    png_and_svg(&figdir.join(stem), (520, 520), &fig)?;
    Ok(Some(stem.to_string()))
}
