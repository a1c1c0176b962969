//! `symfeat heads list|eval`: the head zoo, and evaluating a head on
//! features and weights from any source (how a PyTorch user checks symfeat).

use crate::backend::Cpu;
use crate::heads::{HeadKind, HeadOps, HeadSpec, cross_entropy};
use crate::npy::{MatrixReader, read_labels, read_vector};
use crate::train::{parse_head_params, write_npy_f32};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
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

fn to_tensor(v: &[f64], shape: [usize; 2], dev: &burn::tensor::Device<Cpu>) -> Tensor<Cpu, 2> {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(f, shape), dev)
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
    if labels.len() != n {
        bail!(
            "{} has {n} rows but {} has {} labels",
            a.features.display(),
            a.labels.display(),
            labels.len()
        );
    }
    let (w, wr, wd) = MatrixReader::open(&a.weights, "weights")?.read_all()?;
    if wd != d {
        bail!(
            "{}: weights have D = {wd}, features have D = {d}",
            a.weights.display()
        );
    }
    let c = if kind == HeadKind::Symmetrical {
        if wr != 2 {
            bail!(
                "{}: the symmetrical layer takes its 2 x D parameters (v1, v2), got {wr} rows",
                a.weights.display()
            );
        }
        let c = a
            .classes
            .context("--classes C is required for the symmetrical layer")?;
        if c < 2 {
            bail!("--classes {c}: expected at least 2 classes");
        }
        c
    } else {
        if wr < 2 {
            bail!(
                "{}: {wr} class weight row(s); expected C x D with C >= 2 classes",
                a.weights.display()
            );
        }
        wr
    };
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= c) {
        bail!(
            "{}: label {l} at index {i} is outside 0..{c}",
            a.labels.display()
        );
    }
    let dev = Default::default();
    let mut head = spec.init::<Cpu>(d, c, &dev).with_context(|| {
        format!(
            "--head {} with D = {d} (columns of {}) and C = {c}",
            a.head,
            a.features.display()
        )
    })?;
    let wt = to_tensor(&w, [wr, wd], &dev);
    let bias = match &a.bias {
        Some(p) => {
            let b = read_vector(p, "bias")?;
            if b.len() != c {
                bail!(
                    "{} (--bias): {} values, expected C = {c} (rows of {})",
                    p.display(),
                    b.len(),
                    a.weights.display()
                );
            }
            Some(b)
        }
        None => None,
    };
    // What the built head has: a bias (softmax, center) or not.
    match (&bias, head.bias().is_some()) {
        (None, true) => bail!("--bias b.npy is required for the {} head", a.head),
        (Some(_), false) => bail!("--bias applies to the softmax head only, not to {}", a.head),
        _ => {}
    }
    let bias = bias.map(|b| to_tensor(&b, [1, c], &dev).reshape([c]));
    head.load_weights(wt, bias)
        .with_context(|| format!("--weights {}", a.weights.display()))?;
    let xt = to_tensor(&x, [n, d], &dev);
    let yv: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    let yt = Tensor::<Cpu, 1, Int>::from_data(TensorData::new(yv, [n]), &dev);
    let logits = head.train_logits(xt, yt.clone(), a.step);
    let loss: f32 = cross_entropy(logits.clone(), yt).into_scalar().elem();
    if let Some(p) = &a.logits_out {
        let v: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| anyhow::anyhow!("cannot read the logits back: {e:?}"))?;
        write_npy_f32(p, v, n, c)?;
    }
    println!("{}", serde_json::json!({ "loss": loss }));
    Ok(ExitCode::SUCCESS)
}
