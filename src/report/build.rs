//! The study report: read every run of a study directory, measure
//! stability and geometry per head, draw the figures, write `report.html`
//! (self-contained), `summary.json` and `summary.md`.

use super::claims;
use super::html;
use super::landscape::{LandscapeGrid, class_landscape};
use super::plot::{Band, CurvesFigure, LandscapeFigure, ScatterFigure, png_and_svg};
use super::run::{RunData, TRAJECTORIES, load_run, probe_at};
use super::summary::{QUESTION, Summary, decide, group_of, rules, summarise, verdict};
use crate::geometry::Matrix;
use crate::geometry::analysis::HeadForm;
use crate::npy::{MatrixReader, read_labels, read_vector};
use crate::run_dir::{self, STUDY_FILE, study_run_dirs};
use crate::statistics::mean;
use crate::study::StudyConfig;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

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
    // The study's variants name its runs; without a readable study.toml the
    // report still works, grouping runs by head and features, and says so.
    let study_path = dir.join(STUDY_FILE);
    let study = if study_path.exists() {
        match StudyConfig::from_file(&study_path) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("warning: {e:#}; runs are grouped by head and features instead");
                None
            }
        }
    } else {
        None
    };
    // Run directory name -> variant, and the variants in study order.
    let specs = match study.as_ref().map(|s| s.runs(dir)) {
        Some(Ok(specs)) => specs,
        Some(Err(e)) => {
            eprintln!(
                "warning: {}: {e:#}; runs are grouped by head and features instead",
                study_path.display()
            );
            vec![]
        }
        None => vec![],
    };
    let variant_of = |d: &Path| -> Option<String> {
        let name = d.file_name()?.to_string_lossy().into_owned();
        specs
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.variant.clone())
    };
    let mut runs = vec![];
    let mut unfinished = vec![];
    // A single run's directory (`symfeat train`, or a PyTorch run written
    // by the Python package's Probe) is reported as a study of one run.
    let single = !dir.join(run_dir::STUDY_RUNS).exists() && dir.join(run_dir::CONFIG).exists();
    let dirs = if single {
        vec![dir.to_path_buf()]
    } else {
        study_run_dirs(dir)?
    };
    for d in dirs {
        match load_run(&d, variant_of(&d).as_deref())? {
            Some(r) if !r.history.is_empty() || r.diverged.is_some() || r.failed.is_some() => {
                runs.push(r)
            }
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
    let figdir = dir.join(run_dir::FIGURES);
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
        for (key, q, label) in [TRAJECTORIES[0], TRAJECTORIES[3]] {
            figures.push(curves(key, label, label, &|r, e| probe_at(r, e, q))?);
        }
        for v in &present {
            let Some(run) = by_variant(v).into_iter().find(|r| {
                r.diverged.is_none()
                    && r.failed.is_none()
                    && r.dir.join(run_dir::CLASS_WEIGHTS).exists()
            }) else {
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
        &dir.join(run_dir::SUMMARY_JSON),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    crate::atomic::write(
        &dir.join(run_dir::SUMMARY_MD),
        html::markdown(&summary).as_bytes(),
    )?;
    crate::atomic::write(
        &dir.join(run_dir::REPORT_HTML),
        html::page(&summary, &runs, &figdir)?.as_bytes(),
    )?;
    Ok(summary)
}

/// Scale of the run's head from its last probe (cosine heads), and its bias.
fn head_geometry(run: &RunData) -> Result<(Option<f64>, Option<Vec<f64>>)> {
    let scale = run
        .probe
        .last()
        .and_then(|p| p.analysis())
        .and_then(|a| match a.head {
            HeadForm::Cosine { scale } => Some(scale),
            HeadForm::Linear => None,
        });
    let path = run.dir.join(run_dir::BIAS);
    let bias = if scale.is_none() && path.exists() {
        Some(read_vector(&path, "bias")?)
    } else {
        None
    };
    Ok((scale, bias))
}

fn landscape_figure(run: &RunData, figdir: &Path, stem: &str) -> Result<Option<String>> {
    let (w, c, d) =
        MatrixReader::open(&run.dir.join(run_dir::CLASS_WEIGHTS), "class weights")?.read_all()?;
    let weights = Matrix::new(c, d, w)?;
    let (scale, bias) = head_geometry(run)?;
    let grid = LandscapeGrid {
        radii: 30,
        angles: 120,
        ..Default::default()
    };
    let (l, towards) = match class_landscape(&weights, bias.as_deref(), scale, 0, None, grid) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("warning: {}: no landscape figure ({e:#})", run.name);
            return Ok(None);
        }
    };
    let fig = LandscapeFigure {
        landscape: &l,
        title: format!("{}: p_0, plane of w_0 and w_{towards}", run.config.head),
        reference: format!("w_{towards}"),
    };
    png_and_svg(&figdir.join(stem), (560, 500), &fig)?;
    Ok(Some(stem.to_string()))
}

/// The 2-D features and class weights of a run with D = 2 (LeNet++), as a
/// scatter; `None` when the run has no 2-D features. Files that do not fit
/// each other (label count, weight columns, labels outside the classes)
/// are an error naming them, never a panic.
fn scatter_figure(run: &RunData, figdir: &Path, stem: &str) -> Result<Option<String>> {
    let features = run.dir.join(run_dir::FEATURES);
    let Ok(reader) = MatrixReader::open(&features, "features") else {
        return Ok(None);
    };
    if reader.cols() != 2 {
        return Ok(None);
    }
    let (x, n, _) = reader.read_all()?;
    let labels_path = run.dir.join(run_dir::LABELS);
    let labels = read_labels(&labels_path)?;
    let weights_path = run.dir.join(run_dir::CLASS_WEIGHTS);
    let (w, c, wd) = MatrixReader::open(&weights_path, "class weights")?.read_all()?;
    if labels.len() != n {
        bail!(
            "{} has {} labels for the {n} rows of {}",
            labels_path.display(),
            labels.len(),
            features.display()
        );
    }
    if wd != 2 {
        bail!(
            "{} has {wd} columns, the 2-D features of {} need 2",
            weights_path.display(),
            features.display()
        );
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l >= c) {
        bail!(
            "{}: label {l} at index {i} is outside the {c} classes of {}",
            labels_path.display(),
            weights_path.display()
        );
    }
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
