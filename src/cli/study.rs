//! `symfeat study`, `symfeat report` and `symfeat reproduce`.

use crate::report::build_report;
use crate::study::{StudyConfig, Variant, run_study};
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
    /// `quick` (default: MLP on the full Fashion-MNIST, 10 variants x 3 seeds
    /// to a plateau, sized for 15 minutes on 2 CPU cores), `long` (the
    /// reference CNN, 5 seeds, up to 60 epochs: hours on a CPU) or `paper`
    /// (the authors' CIFAR-10 / ResNet-110 protocol; needs --data and,
    /// realistically, a GPU).
    #[arg(long, default_value = "quick")]
    protocol: String,
    /// Dataset directory (CIFAR-10 binary files for `paper`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Study directory.
    #[arg(long, default_value = "runs/reproduce")]
    out: PathBuf,
    /// Device: cpu, cuda, cuda:N, vulkan, vulkan:N, vulkan:cpu (cargo feature `vulkan`), or libtorch (CPU through libtorch; cargo feature `tch`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Write the study configuration and stop (to edit it and run `symfeat study`).
    #[arg(long)]
    print_config: bool,
}

/// Build and print the report; with runs that failed in this invocation,
/// name them and exit with 1 after the report (of the others) is written.
fn finish(out: &Path, failed: &[(String, String)]) -> Result<ExitCode> {
    let s = build_report(out)?;
    println!("{}", crate::report::html::markdown(&s));
    eprintln!(
        "report: {}",
        out.join(crate::run_dir::REPORT_HTML).display()
    );
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: {} run(s) failed; the report covers the others, and running the same \
         command again retries them:",
        failed.len()
    );
    for (name, e) in failed {
        eprintln!("  {name}: {e}");
    }
    Ok(ExitCode::FAILURE)
}

pub(super) fn study(a: StudyArgs) -> Result<ExitCode> {
    let s = StudyConfig::from_file(&a.config)?;
    // Every run's configuration is checked before the first one starts.
    s.runs(&a.out)
        .with_context(|| format!("invalid study file {}", a.config.display()))?;
    let outcome = run_study(&s, &a.out)?;
    finish(&a.out, &outcome.failed)
}

pub(super) fn report(a: ReportArgs) -> Result<ExitCode> {
    finish(&a.dir, &[])
}

/// The popular heads of the paper's comparison, each a variant on the
/// net's own (post-ReLU) features.
pub const REPRODUCE_HEADS: [&str; 5] = ["softmax", "normface", "sphereface", "cosface", "arcface"];

fn variant(name: &str, head: &str, feature_act: Option<&str>) -> Variant {
    let mut train = toml::Table::new();
    if let Some(a) = feature_act {
        train.insert("feature_act".into(), toml::Value::String(a.into()));
    }
    Variant {
        name: name.into(),
        head: head.into(),
        head_params: Default::default(),
        train,
    }
}

/// The variants beyond the popular heads: the symmetrical layer as the
/// authors train it (uniform plane, the net's post-ReLU features) and on
/// signed features (BatchNorm1d, linear), the fixed simplex ETF (unit +
/// zero-sum, not learned), and NormFace on BatchNorm features, the control
/// that isolates the feature change from the layer (field notes §7).
pub fn reproduce_variants() -> Vec<Variant> {
    vec![
        variant("symmetrical", "symmetrical", None),
        variant("symmetrical-bn", "symmetrical", Some("bn")),
        variant("symmetrical-linear", "symmetrical", Some("linear")),
        variant("simplex", "simplex", None),
        variant("normface-bn", "normface", Some("bn")),
    ]
}

/// The study `symfeat reproduce` runs.
pub fn reproduce_study(protocol: &str, data: Option<PathBuf>, device: &str) -> Result<StudyConfig> {
    let heads = REPRODUCE_HEADS.iter().map(|s| s.to_string()).collect();
    let variants = reproduce_variants();
    Ok(match protocol {
        "quick" => StudyConfig {
            heads,
            variants,
            seeds: vec![0, 1, 2],
            nets: vec![],
            datasets: vec![],
            train: TrainConfig {
                dataset: "fashion-mnist".into(),
                data,
                net: "mlp".into(),
                epochs: 24,
                batch: 128,
                lr: 0.02,
                warmup_epochs: 1,
                plateau_window: 6,
                plateau_slope: 0.0005,
                plateau_anneal_epochs: 2,
                probe_train_samples: 1000,
                device: device.into(),
                ..Default::default()
            },
            head_params: Default::default(),
            description: "symfeat reproduce (quick protocol): does each variant's class weight sit at its class center, and does \
                          the symmetrical layer learn more stably than the popular heads? The MLP (784-256-128, ReLU) on the full \
                          Fashion-MNIST (60,000 training, 10,000 test images), batch 128, SGD lr 0.02 momentum 0.9 weight decay 5e-4, \
                          1 warm-up epoch then a constant rate, each run until its test accuracy has plateaued over 6 epochs (at most \
                          24), then 2 epochs at lr x 0.1 for the final figures, 3 seeds, every head with its reference defaults (field notes §3). Why the MLP: it trains ~30x faster \
                          per image than the reference CNN here (~60,000 vs ~2,200 img/s on 2 cores), so 10 variants x 3 seeds can \
                          run to a plateau on the whole dataset within 15 minutes; the CNN would need a 20x smaller subset or 10x the \
                          time (`--protocol long`). A constant rate until the plateau keeps its epoch-to-epoch scatter (what \
                          stability measures, on the plateau's window) from being annealed away."
                .into(),
        },
        "long" => StudyConfig {
            heads,
            variants,
            seeds: vec![0, 1, 2, 3, 4],
            nets: vec![],
            datasets: vec![],
            train: TrainConfig {
                dataset: "fashion-mnist".into(),
                data,
                net: "cnn".into(),
                epochs: 60,
                batch: 128,
                lr: 0.02,
                warmup_epochs: 1,
                plateau_window: 8,
                plateau_slope: 0.0005,
                plateau_anneal_epochs: 3,
                device: device.into(),
                ..Default::default()
            },
            head_params: Default::default(),
            description: "symfeat reproduce (long protocol): the reference CNN on the full Fashion-MNIST, batch 128, SGD lr 0.02 \
                          momentum 0.9 weight decay 5e-4, 1 warm-up epoch then a constant rate, each run until its test accuracy \
                          has plateaued over 8 epochs (at most 60), then 3 epochs at lr x 0.1, 5 seeds."
                .into(),
        },
        "paper" => {
            let Some(data) = data else {
                bail!("--protocol paper needs --data DIR with the CIFAR-10 binary files (data_batch_1.bin ... test_batch.bin)");
            };
            StudyConfig {
                heads,
                variants,
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
        other => bail!("--protocol {other:?}: expected quick, long or paper"),
    })
}

pub(super) fn reproduce(a: ReproduceArgs) -> Result<ExitCode> {
    let s = reproduce_study(&a.protocol, a.data, &a.device)?;
    if a.print_config {
        print!("{}", toml::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = run_study(&s, &a.out)?;
    finish(&a.out, &outcome.failed)
}
