//! `symfeat study`, `symfeat report` and `symfeat reproduce`.

use crate::report::build_report;
use crate::study::{StudyConfig, run_study};
use crate::train::TrainConfig;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `symfeat study`.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// The study: heads, seeds, [train] options (see README).
    #[arg(long)]
    config: PathBuf,
    /// Study directory (runs/, figures/, report.html, summary.json, summary.md).
    #[arg(long)]
    out: PathBuf,
}

/// Options of `symfeat report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A study directory.
    dir: PathBuf,
}

/// Options of `symfeat reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// `quick` (default: Fashion-MNIST subset, sized for 15 minutes on 2 CPU
    /// cores) or `paper` (the authors' CIFAR-10 / ResNet-110 protocol; needs
    /// --data and, realistically, a GPU).
    #[arg(long, default_value = "quick")]
    protocol: String,
    /// Dataset directory (CIFAR-10 binary files for `paper`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Study directory.
    #[arg(long, default_value = "runs/reproduce")]
    out: PathBuf,
    /// Device: cpu, cuda, cuda:N, or libtorch (CPU through libtorch; cargo feature `tch`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Write the study configuration and stop (to edit it and run `symfeat study`).
    #[arg(long)]
    print_config: bool,
}

fn finish(out: &Path) -> Result<ExitCode> {
    let s = build_report(out)?;
    println!("{}", crate::report::html::markdown(&s));
    eprintln!("report: {}", out.join("report.html").display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn study(a: StudyArgs) -> Result<ExitCode> {
    let s = StudyConfig::from_file(&a.config)?;
    // Every run's configuration is checked before the first one starts.
    s.runs(&a.out)
        .with_context(|| format!("invalid study file {}", a.config.display()))?;
    run_study(&s, &a.out)?;
    finish(&a.out)
}

pub(super) fn report(a: ReportArgs) -> Result<ExitCode> {
    finish(&a.dir)
}

/// The heads of the paper's comparison (and the fixed polygon as a control).
pub const REPRODUCE_HEADS: [&str; 7] = [
    "softmax",
    "normface",
    "sphereface",
    "cosface",
    "arcface",
    "symmetrical",
    "polygon",
];

/// The study `symfeat reproduce` runs.
pub fn reproduce_study(protocol: &str, data: Option<PathBuf>, device: &str) -> Result<StudyConfig> {
    let heads = REPRODUCE_HEADS.iter().map(|s| s.to_string()).collect();
    Ok(match protocol {
        "quick" => StudyConfig {
            heads,
            seeds: vec![0, 1, 2],
            nets: vec![],
            datasets: vec![],
            train: TrainConfig {
                dataset: "fashion-mnist".into(),
                data,
                net: "cnn".into(),
                epochs: 4,
                batch: 64,
                lr: 0.05,
                train_limit: Some(3000),
                test_limit: Some(2000),
                probe_train_samples: 1000,
                device: device.into(),
                ..Default::default()
            },
            head_params: Default::default(),
            description: "symfeat reproduce (quick protocol): does each head's class weight sit at its class center, and which head \
                          learns most stably? Reference CNN on the first 3,000 Fashion-MNIST training images (2,000 test images), \
                          4 epochs, batch 64, SGD lr 0.05 momentum 0.9 weight decay 5e-4, 3 seeds, every head with its reference \
                          defaults (field notes §3). Sized to finish within 15 minutes on 2 CPU cores: a short-training view, \
                          not the paper's 160-epoch CIFAR protocol (`--protocol paper`)."
                .into(),
        },
        "paper" => {
            let Some(data) = data else {
                bail!("--protocol paper needs --data DIR with the CIFAR-10 binary files (data_batch_1.bin ... test_batch.bin)");
            };
            StudyConfig {
                heads,
                seeds: vec![0, 1, 2],
                nets: vec![],
                datasets: vec![],
                train: TrainConfig {
                    dataset: "cifar10".into(),
                    data: Some(data),
                    net: "resnet110".into(),
                    epochs: 160,
                    batch: 256,
                    lr: 0.1,
                    momentum: 0.9,
                    weight_decay: 1e-4,
                    schedule: "multistep".into(),
                    milestones: vec![80, 120],
                    gamma: 0.1,
                    normalize: "half".into(),
                    augment: Some(false),
                    device: device.into(),
                    ..Default::default()
                },
                head_params: Default::default(),
                description: "The authors' protocol (field notes §2): CIFAR-10, ResNet-110 with option-A shortcuts, SGD 0.1 / \
                              momentum 0.9 / weight decay 1e-4, batch 256, lr x0.1 at epochs 80 and 120, inputs normalised with \
                              mean/std 0.5, no augmentation, 160 epochs, 3 seeds."
                    .into(),
            }
        }
        other => bail!("--protocol {other:?}: expected quick or paper"),
    })
}

pub(super) fn reproduce(a: ReproduceArgs) -> Result<ExitCode> {
    let s = reproduce_study(&a.protocol, a.data, &a.device)?;
    if a.print_config {
        print!("{}", toml::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    run_study(&s, &a.out)?;
    finish(&a.out)
}
