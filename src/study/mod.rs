//! Studies: a grid of training runs (heads x seeds, optionally x nets x
//! datasets) that skips finished runs, resumes interrupted ones, records
//! diverged ones, and ends with the report.

mod grid;
pub mod stability;

pub use grid::{RunSpec, StudyConfig, StudyOutcome, Variant, run_study};
