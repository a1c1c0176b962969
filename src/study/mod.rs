//! Studies: a grid of training runs (heads x seeds, optionally x nets x
//! datasets) that skips finished runs, resumes interrupted ones, records
//! diverged ones, and ends with the report. Its cells can be shared out
//! between processes (`--jobs`) and machines (`--shard`, Slurm).

pub mod cells;
mod grid;
pub mod slurm;
pub mod stability;
mod work;

pub use cells::Shard;
pub use grid::{RunSpec, StudyConfig, Variant};
pub use work::{CellState, StudyOutcome, Work, prepare_study, run_jobs, run_study, study_status};
