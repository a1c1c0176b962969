//! Geometry of the classification layer, pure f64 (no deep-learning
//! dependency).
//!
//! Legend: `B` batch, `N` samples, `D` feature dim, `C` classes.
pub mod error;
pub mod linalg;
pub mod stats;
