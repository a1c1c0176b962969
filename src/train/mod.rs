//! Training: configuration, the model, the optimiser, schedules, the loop
//! and its seams (auxiliary losses, weight transforms), evaluation, the
//! probe, checkpoints and exports.

pub mod aux_loss;
mod checkpoint;
mod config;
pub(crate) mod eval;
mod export;
pub(crate) mod model;
mod optim;
pub(crate) mod probe;
pub mod regularizer;
mod run;
mod schedule;
mod trained;

pub(crate) use checkpoint::capture;
pub use checkpoint::{check_fits, load_model, param_shapes};
pub use config::{
    Normalize, TrainConfig, ValidTrainConfig, de_head_params, head_param_word, parse_head_params,
};
pub use export::{
    collect_f32, export_safetensors, write_npy_f32, write_npy_i64, write_safetensors,
};
pub use model::Model;
pub use optim::sgd;
pub use run::{Diverged, Prepared, TrainOutcome, prepare, train, train_locked};
pub use schedule::Schedule;
pub use trained::{Loaded, Measured, load_run, load_run_prepared, measure};
