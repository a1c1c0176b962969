//! `symfeat analyze`: arguments -> [`crate::analyze`] -> table and JSON.

use crate::analyze::{AnalyzeFiles, analyze_files, format_table};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `symfeat analyze`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct AnalyzeArgs {
    /// Features, N x D float32/float64 NPY (e.g. a run's features.npy).
    #[arg(long)]
    features: PathBuf,
    /// Labels, N int32/int64 NPY.
    #[arg(long)]
    labels: PathBuf,
    /// Class weights, C x D float32/float64 NPY (rows are w_c).
    #[arg(long)]
    weights: PathBuf,
    /// Bias, C floats (linear softmax head).
    #[arg(long)]
    bias: Option<PathBuf>,
    /// Scale s of a cosine head (NormFace, symmetrical layer, margin heads); omit for a linear head.
    #[arg(long, allow_hyphen_values = true)]
    scale: Option<f64>,
    /// Write the full report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub(super) fn analyze(args: AnalyzeArgs) -> Result<ExitCode> {
    let a = analyze_files(&AnalyzeFiles {
        features: args.features,
        labels: args.labels,
        weights: args.weights,
        bias: args.bias,
        scale: args.scale,
    })?;
    print!("{}", format_table(&a));
    if let Some(p) = args.json {
        crate::atomic::write(&p, serde_json::to_string_pretty(&a)?.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
