//! `symfeat quantize`: post-training discretisation of a trained run.

use crate::backend::set_threads;
use crate::compress::quantize::default_out;
use crate::compress::{Criterion, Granularity, QuantizeOptions, Scheme, run_quantize};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// `symfeat quantize RUN_DIR ...`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// A run directory (`symfeat train --out`); its last checkpoint is quantised.
    run: PathBuf,
    /// Schemes, comma-separated: linear, exponential.
    #[arg(long, default_value = "linear,exponential", value_delimiter = ',')]
    schemes: Vec<String>,
    /// Bits per weight, the sign bit included, comma-separated (1..=8).
    #[arg(long, default_value = "1,2,3,4,5,6,7,8", value_delimiter = ',')]
    bits: Vec<u32>,
    /// One scale (and base) per tensor (`layer`) or per output channel (`channel`).
    #[arg(long, default_value = "layer")]
    granularity: String,
    /// One magnitude code is 0 (needs bits >= 2).
    #[arg(long)]
    zero_level: bool,
    /// How the exponential base q is chosen: mse (least squared error) or correlation.
    #[arg(long, default_value = "mse")]
    criterion: String,
    /// Keep the first layer in float32.
    #[arg(long)]
    float_first: bool,
    /// Keep the classification layer (the head's weights) in float32.
    #[arg(long)]
    float_last: bool,
    /// Write every discretised model (codes and levels) as safetensors.
    #[arg(long)]
    save: bool,
    /// Output directory (default RUN/quantize).
    #[arg(long)]
    out: Option<PathBuf>,
    /// CPU threads.
    #[arg(long)]
    threads: Option<usize>,
    /// Evaluate a model `--save` wrote (on the run's test set) instead.
    #[arg(long, value_name = "FILE")]
    load: Option<PathBuf>,
}

pub(super) fn quantize(a: QuantizeArgs) -> Result<ExitCode> {
    let mut schemes = vec![];
    for s in &a.schemes {
        match Scheme::parse(s) {
            Some(k) if !schemes.contains(&k) => schemes.push(k),
            Some(_) => {}
            None => bail!("--schemes {s:?}: expected linear or exponential"),
        }
    }
    let Some(granularity) = Granularity::parse(&a.granularity) else {
        bail!(
            "--granularity {:?}: expected layer or channel",
            a.granularity
        );
    };
    let Some(criterion) = Criterion::parse(&a.criterion) else {
        bail!("--criterion {:?}: expected mse or correlation", a.criterion);
    };
    if let Some(b) = a.bits.iter().find(|b| !(1..=8).contains(*b)) {
        bail!("--bits {b}: expected bit widths in 1..=8 (the sign bit included)");
    }
    let mut bits = a.bits.clone();
    bits.sort_unstable();
    bits.dedup();
    if a.zero_level && bits.contains(&1) {
        bail!("--zero-level needs bits >= 2 (1 bit is sign x M); drop 1 from --bits");
    }
    if let Some(0) = a.threads {
        bail!("--threads 0: expected at least 1");
    }
    set_threads(a.threads);
    if let Some(file) = &a.load {
        let m = crate::compress::quantize::evaluate_saved(&a.run, file)?;
        println!("{}", serde_json::to_string(&m)?);
        return Ok(ExitCode::SUCCESS);
    }
    let opts = QuantizeOptions {
        out: a.out.clone().unwrap_or_else(|| default_out(&a.run)),
        run: a.run,
        schemes,
        bits,
        granularity,
        zero: a.zero_level,
        criterion,
        float_first: a.float_first,
        float_last: a.float_last,
        save: a.save,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let r = run_quantize(&opts)?;
    println!("| scheme | bits | test acc | drop (pts) | ratio (model) | ratio (weights) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| float32 | 32 | {:.2}% | | 1.00 | 1.00 |",
        100.0 * r.float.test_acc
    );
    for row in &r.results {
        println!(
            "| {} | {} | {:.2}% | {:+.2} | {:.2} | {:.2} |",
            row.scheme.name(),
            row.bits,
            100.0 * row.measured.test_acc,
            row.acc_drop_pts,
            row.sizes.compression_ratio,
            row.sizes.weights_compression_ratio
        );
    }
    eprintln!(
        "results: {} ({:.1} s)",
        opts.out.join("results.json").display(),
        r.seconds
    );
    Ok(ExitCode::SUCCESS)
}
