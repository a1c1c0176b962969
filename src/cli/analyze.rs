//! `symfeat analyze`: arguments -> [`crate::analyze`] -> table and JSON.

use crate::analyze::{AnalyzeFiles, analyze_files, format_table};
use crate::geometry::Precision;
use anyhow::Result;
use clap::{Args, ValueEnum};
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
    /// Arithmetic of the second pass's products: `mixed` forms them in f32
    /// on centred samples and recomputes in f64 every head prediction or
    /// nearest-mean decision its error bound cannot settle (NC4 and the
    /// angles as in f64; NC1 to about 1e-6 relative); `f64` throughout.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Mixed)]
    precision: PrecisionArg,
}

/// `--precision` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PrecisionArg {
    Mixed,
    F64,
}

pub(super) fn analyze(args: AnalyzeArgs) -> Result<ExitCode> {
    let a = analyze_files(&AnalyzeFiles {
        features: args.features,
        labels: args.labels,
        weights: args.weights,
        bias: args.bias,
        scale: args.scale,
        precision: match args.precision {
            PrecisionArg::Mixed => Precision::Mixed,
            PrecisionArg::F64 => Precision::F64,
        },
    })?;
    print!("{}", format_table(&a));
    if let Some(p) = args.json {
        crate::atomic::write(&p, serde_json::to_string_pretty(&a)?.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
