//! Command-line interface: clap definitions and dispatch only.

mod analyze;
mod heads;
mod landscape;
mod prune;
mod quantize;
mod study;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// symfeat: train with the symmetrical layer and popular heads, and measure
/// whether class weights are class centers.
#[derive(Debug, Parser)]
#[command(name = "symfeat", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum Command {
    /// The paper's question on the default data: heads x seeds study, then the report.
    Reproduce(study::ReproduceArgs),
    /// Run a study (heads x seeds grid from a TOML file), then write its report.
    Study(study::StudyArgs),
    /// Rebuild a study's report from its finished runs.
    Report(study::ReportArgs),
    /// Train a backbone with a head; writes config, metrics, checkpoints and weights.
    Train(train::TrainArgs),
    /// Measure training and inference speed on random data.
    Bench(train::BenchArgs),
    /// Are the class weights the class centers? Angles, softmax centers, NC1-NC4 from NPY files.
    Analyze(analyze::AnalyzeArgs),
    /// The head zoo: list heads, or evaluate one on given features and weights.
    Heads(heads::HeadsArgs),
    /// Softmax landscape of one class over (R, theta): CSV and polar plot.
    Landscape(landscape::LandscapeArgs),
    /// Discretise a trained run's weights (linear / exponential levels, 1-8 bits): accuracy, geometry, size, cards.
    Quantize(quantize::QuantizeArgs),
    /// Taylor pruning of a trained run: remove the least important channels, rebuild the smaller net, fine-tune it.
    Prune(prune::PruneArgs),
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(args) => train::train(args),
        Command::Reproduce(args) => study::reproduce(args),
        Command::Study(args) => study::study(args),
        Command::Report(args) => study::report(args),
        Command::Bench(args) => train::bench(args),
        Command::Analyze(args) => analyze::analyze(args),
        Command::Heads(args) => heads::heads(args),
        Command::Landscape(args) => landscape::landscape(args),
        Command::Quantize(args) => quantize::quantize(args),
        Command::Prune(args) => prune::prune(args),
    }
}
