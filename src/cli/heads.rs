//! `symfeat heads list|eval`: the head zoo, and evaluating a head on
//! features and weights from any source (how a PyTorch user checks symfeat).

use crate::backend::Cpu;
use crate::heads::evaluate::{EvalInputs, EvalNames, cli_option, evaluate};
use crate::heads::{HeadKind, HeadSpec};
use crate::npy::{MatrixReader, read_labels, read_vector};
use crate::train::{parse_head_params, write_npy_f32};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `symfeat heads ...`.
#[derive(Debug, Args)]
pub struct HeadsArgs {
    #[command(subcommand)]
    command: HeadsCommand,
}

#[derive(Debug, Subcommand)]
enum HeadsCommand {
    /// Every head with its formula, parameters and defaults.
    List,
    /// Logits and loss of a head on given features, labels and weights.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
struct EvalArgs {
    /// Head name (see `symfeat heads list`).
    #[arg(long)]
    head: String,
    /// Head parameter NAME=VALUE (repeatable), e.g. s=64, m=0.5.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    param: Vec<String>,
    /// Features, N x D float NPY.
    #[arg(long)]
    features: PathBuf,
    /// Labels, N integer NPY.
    #[arg(long)]
    labels: PathBuf,
    /// Weights: C x D class weights, or for `symmetrical` the 2 x D (v1, v2).
    #[arg(long)]
    weights: PathBuf,
    /// Bias, C floats (softmax).
    #[arg(long)]
    bias: Option<PathBuf>,
    /// Number of classes (needed for `symmetrical`).
    #[arg(long)]
    classes: Option<usize>,
    /// Optimizer step (SphereFace's lambda annealing), default 0.
    #[arg(long, default_value_t = 0)]
    step: usize,
    /// Write the training logits (N x C float32) here.
    #[arg(long)]
    logits_out: Option<PathBuf>,
}

pub(super) fn heads(args: HeadsArgs) -> Result<ExitCode> {
    match args.command {
        HeadsCommand::List => {
            for kind in HeadKind::ALL {
                println!("{:<12} {}", kind.name(), kind.formula());
                for p in kind.params() {
                    println!("{:<14}{} = {}  ({})", "", p.name, p.default, p.doc);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        HeadsCommand::Eval(a) => eval(a),
    }
}

fn eval(a: EvalArgs) -> Result<ExitCode> {
    let Some(kind) = HeadKind::parse(&a.head) else {
        bail!("--head {:?}: expected one of {}", a.head, HeadKind::names());
    };
    let spec = HeadSpec {
        kind,
        params: parse_head_params(&a.param, "--param")?,
    };
    spec.resolve().context("--param")?;
    let (x, n, d) = MatrixReader::open(&a.features, "features")?.read_all()?;
    let labels = read_labels(&a.labels)?;
    let (w, wr, wd) = MatrixReader::open(&a.weights, "weights")?.read_all()?;
    let bias = a
        .bias
        .as_deref()
        .map(|p| read_vector(p, "bias"))
        .transpose()?;
    let narrow = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
    let (x, w, bias) = (narrow(&x), narrow(&w), bias.as_deref().map(narrow));
    let show = |p: &std::path::Path| p.display().to_string();
    let out = evaluate::<Cpu>(
        &EvalInputs {
            spec,
            head_name: &a.head,
            features: &x,
            features_shape: (n, d),
            labels: &labels,
            weights: &w,
            weights_shape: (wr, wd),
            bias: bias.as_deref(),
            classes: a.classes,
            step: a.step,
            names: EvalNames {
                features: show(&a.features),
                labels: show(&a.labels),
                weights: show(&a.weights),
                bias: a
                    .bias
                    .as_deref()
                    .map(|p| format!("{} (--bias)", p.display()))
                    .unwrap_or_default(),
                option: cli_option,
            },
        },
        &Default::default(),
    )?;
    if let Some(p) = &a.logits_out {
        write_npy_f32(p, out.logits, n, out.classes)?;
    }
    println!("{}", serde_json::json!({ "loss": out.loss }));
    Ok(ExitCode::SUCCESS)
}
