//! symfeat: the geometry of the classification layer of neural networks.
//!
//! Train backbones with the paper's symmetrical layer or popular heads, and
//! measure whether the class weights are the class centers.
#![warn(missing_docs)]

pub mod analyze;
pub mod atomic;
pub mod backend;
pub mod bench;
pub mod binary;
pub mod cli;
pub mod compress;
pub mod data;
#[doc(hidden)]
pub mod fuzzing;
pub mod geometry;
pub mod heads;
pub mod kernels;
pub mod nets;
pub mod npy;
pub mod prune;
pub mod report;
pub mod run_dir;
pub mod statistics;
pub mod study;
pub mod tensors;
pub mod train;
