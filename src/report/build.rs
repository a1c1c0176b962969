//! The study report: read every run of a study directory, measure
//! stability and geometry per head, draw the figures, write `report.html`
//! (self-contained), `summary.json` and `summary.md`.

use super::html;
use super::landscape::{LandscapeGrid, class_landscape};
use super::plot::{Band, CurvesFigure, LandscapeFigure, ScatterFigure, png_and_svg};
use crate::geometry::Matrix;
use crate::npy::{MatrixReader, read_labels, read_vector};
use crate::study::stability::{MeanStd, RunStability, mean, measure};
use crate::study::{DIVERGED, STUDY_FILE, StudyConfig, run_dirs};
use crate::train::{EpochMetrics, ProbeLine, TrainConfig};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Epochs of the tail whose test-accuracy deviation measures stability.
pub const TAIL_EPOCHS: usize = 3;

/// One run as read back from its directory.
#[derive(Debug, Clone)]
pub struct RunData {
    /// Directory name.
    pub name: String,
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

/// Read a run directory (None when it has no config yet).
pub fn load_run(dir: &Path) -> Result<Option<RunData>> {
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
    let stability = measure(&history, TAIL_EPOCHS, diverged.is_some());
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Some(RunData {
        name,
        dir: dir.to_path_buf(),
        config,
        history,
        probe,
        diverged,
        stability,
    }))
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

/// Per head (within one dataset and net), over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct HeadSummary {
    /// Dataset and net.
    pub group: String,
    /// Head name.
    pub head: String,
    /// Runs found (seeds).
    pub runs: usize,
    /// Runs that diverged.
    pub diverged: usize,
    /// Final test accuracy.
    pub final_acc: MeanStd,
    /// Best test accuracy.
    pub best_acc: MeanStd,
    /// Std of the test accuracy over the last epochs (mean over seeds).
    pub last_k_std: f64,
    /// Test-accuracy drops per run (mean).
    pub drops: f64,
    /// Largest drop (mean over seeds).
    pub max_drop: f64,
    /// Training-loss spikes per run (mean).
    pub loss_spikes: f64,
    /// Epochs to 95 % of the final accuracy (mean).
    pub epochs_to_95: f64,
    /// Final value of each trajectory (mean over seeds), by key of [`TRAJECTORIES`].
    pub geometry: BTreeMap<String, MeanStd>,
}

/// Everything the report says, as `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The study's description.
    pub description: String,
    /// Settings shared by the runs.
    pub settings: BTreeMap<String, String>,
    /// Per head.
    pub heads: Vec<HeadSummary>,
    /// The verdict, sentence by sentence.
    pub verdict: Vec<String>,
    /// Runs that were found but had no metrics yet.
    pub unfinished: Vec<String>,
    /// Figures written (stems under `figures/`).
    pub figures: Vec<String>,
}

fn group_of(r: &RunData) -> String {
    format!("{} / {}", r.config.dataset, r.config.net)
}

fn summarise(runs: &[&RunData], group: &str, head: &str) -> HeadSummary {
    let st: Vec<&RunStability> = runs.iter().filter_map(|r| r.stability.as_ref()).collect();
    let col = |f: &dyn Fn(&RunStability) -> f64| -> Vec<f64> { st.iter().map(|s| f(s)).collect() };
    let mut geometry = BTreeMap::new();
    for (key, path, _) in TRAJECTORIES {
        let v: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.probe.last().and_then(|p| probe_value(p, path)))
            .collect();
        if !v.is_empty() {
            geometry.insert(key.to_string(), MeanStd::of(&v));
        }
    }
    let e95: Vec<f64> = st
        .iter()
        .filter_map(|s| s.epochs_to_95.map(|e| e as f64))
        .collect();
    HeadSummary {
        group: group.to_string(),
        head: head.to_string(),
        runs: runs.len(),
        diverged: runs.iter().filter(|r| r.diverged.is_some()).count(),
        final_acc: MeanStd::of(&col(&|s| s.final_acc)),
        best_acc: MeanStd::of(&col(&|s| s.best_acc)),
        last_k_std: mean(&col(&|s| s.last_k_std)),
        drops: mean(&col(&|s| s.drops as f64)),
        max_drop: mean(&col(&|s| s.max_drop)),
        loss_spikes: mean(&col(&|s| s.loss_spikes as f64)),
        epochs_to_95: mean(&e95),
        geometry,
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", 100.0 * v)
    } else {
        "n/a".into()
    }
}

/// The verdict in plain words, from the measured numbers.
pub fn verdict(heads: &[HeadSummary]) -> Vec<String> {
    let mut out = vec![];
    let mut groups: Vec<&str> = heads.iter().map(|h| h.group.as_str()).collect();
    groups.dedup();
    for g in groups {
        let hs: Vec<&HeadSummary> = heads.iter().filter(|h| h.group == g).collect();
        for h in &hs {
            let Some(a) = h.geometry.get("angle_w_mean") else {
                continue;
            };
            let sc = h
                .geometry
                .get("angle_w_softmax_center")
                .map(|m| m.mean)
                .unwrap_or(f64::NAN);
            let word = if a.mean <= 15.0 {
                "are close to the class centers"
            } else if a.mean <= 45.0 {
                "are only partly aligned with the class centers"
            } else {
                "are not the class centers"
            };
            out.push(format!(
                "[{g}] {}: the weights {word}: mean angle(w_c, class mean) {:.1}° (±{:.1} over seeds); angle to the head's own softmax center {:.1}°; test accuracy {} (±{:.2} points).",
                h.head, a.mean, a.std, sc, pct(h.final_acc.mean), 100.0 * h.final_acc.std
            ));
        }
        let mut ranked: Vec<&&HeadSummary> =
            hs.iter().filter(|h| h.last_k_std.is_finite()).collect();
        ranked.sort_by(|a, b| {
            a.last_k_std
                .total_cmp(&b.last_k_std)
                .then(a.drops.total_cmp(&b.drops))
        });
        if let Some(best) = ranked.first() {
            let order: Vec<String> = ranked
                .iter()
                .map(|h| {
                    format!(
                        "{} (tail std {:.2} pts, {:.1} drops)",
                        h.head,
                        100.0 * h.last_k_std,
                        h.drops
                    )
                })
                .collect();
            out.push(format!(
                "[{g}] Most stable learning curve: {} (std of the test accuracy over the last {TAIL_EPOCHS} epochs, then number of epoch-to-epoch drops). Order: {}.",
                best.head,
                order.join(", ")
            ));
            if let Some(pos) = ranked.iter().position(|h| h.head == "symmetrical") {
                let sym = ranked[pos];
                let centers = sym.geometry.get("angle_w_mean").map(|m| m.mean <= 15.0);
                out.push(format!(
                    "[{g}] Against the paper: it claims that the symmetrical layer's weights are the class centers and that its learning curve is more stable than the popular heads'. Here its weights {} (mean angle {:.1}°), and it ranks {} of {} for stability{}; its accuracy is {} against {} for softmax. {}",
                    if centers == Some(true) { "are close to the class centers" } else { "are not close to the class centers" },
                    sym.geometry.get("angle_w_mean").map(|m| m.mean).unwrap_or(f64::NAN),
                    pos + 1,
                    ranked.len(),
                    if pos == 0 { " (most stable)" } else { "" },
                    pct(sym.final_acc.mean),
                    hs.iter().find(|h| h.head == "softmax").map(|h| pct(h.final_acc.mean)).unwrap_or_else(|| "n/a".into()),
                    match (centers == Some(true), pos == 0) {
                        (true, true) => "Both claims agree with this data.",
                        (true, false) => "The centering claim agrees; the stability claim does not on this data.",
                        (false, true) => "The stability claim agrees; the centering claim does not on this data.",
                        (false, false) => "Neither claim is supported by this data.",
                    }
                ));
            }
            let low: Vec<String> = hs
                .iter()
                .filter(|h| h.final_acc.mean < 0.3)
                .map(|h| format!("{} ({})", h.head, pct(h.final_acc.mean)))
                .collect();
            if !low.is_empty() {
                out.push(format!(
                    "[{g}] Near chance with these settings: {}; stability figures of a run that does not learn say little (a flat curve is 'stable').",
                    low.join(", ")
                ));
            }
        }
        for h in hs.iter().filter(|h| h.diverged > 0) {
            out.push(format!(
                "[{g}] {}: {} of {} runs diverged.",
                h.head, h.diverged, h.runs
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
    let mut runs = vec![];
    let mut unfinished = vec![];
    for d in run_dirs(dir)? {
        match load_run(&d)? {
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

    // Groups (dataset / net) and heads in study order.
    let head_order: Vec<String> = match &study {
        Some(s) => s.heads.clone(),
        None => {
            let mut h: Vec<String> = runs.iter().map(|r| r.config.head.clone()).collect();
            h.dedup();
            h
        }
    };
    let mut groups: Vec<String> = runs.iter().map(group_of).collect();
    groups.sort();
    groups.dedup();
    let mut heads = vec![];
    let mut figures = vec![];
    for (gi, g) in groups.iter().enumerate() {
        let in_group: Vec<&RunData> = runs.iter().filter(|r| &group_of(r) == g).collect();
        let present: Vec<&String> = head_order
            .iter()
            .filter(|h| in_group.iter().any(|r| &&r.config.head == h))
            .collect();
        let by_head = |h: &str| -> Vec<&RunData> {
            in_group
                .iter()
                .filter(|r| r.config.head == h)
                .copied()
                .collect()
        };
        for h in &present {
            heads.push(summarise(&by_head(h), g, h));
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
            let series = present.iter().map(|h| band(&by_head(h), h, f)).collect();
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
        for h in &present {
            let Some(run) = by_head(h)
                .into_iter()
                .find(|r| r.diverged.is_none() && r.dir.join("class_weights.npy").exists())
            else {
                continue;
            };
            if let Some(stem) = landscape_figure(run, &figdir, &format!("landscape_{h}{suffix}"))? {
                figures.push(stem);
            }
            if let Some(stem) = scatter_figure(run, &figdir, &format!("scatter_{h}{suffix}"))? {
                figures.push(stem);
            }
        }
    }
    let verdict = verdict(&heads);
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
    if let Some(s) = &study {
        settings.insert("seeds".into(), format!("{:?}", s.seeds));
        for (h, p) in &s.head_params {
            settings.insert(format!("head_params.{h}"), format!("{p:?}"));
        }
    }
    let summary = Summary {
        description: study
            .as_ref()
            .map(|s| s.description.clone())
            .unwrap_or_default(),
        settings,
        heads,
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
