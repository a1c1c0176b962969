//! Training: configuration, schedules, checkpoints, exports and the loop.

mod checkpoint;
mod config;
mod export;
mod run;
mod schedule;

pub use checkpoint::{Checkpoint, CheckpointState};
pub use config::{
    Normalize, TrainConfig, ValidTrainConfig, de_head_params, head_param_word, parse_head_params,
};
pub use export::{export_safetensors, write_npy_f32, write_npy_i64};
pub use run::{Diverged, EpochMetrics, Model, ProbeLine, TrainOutcome, complete, plateau, train};
pub use schedule::Schedule;
