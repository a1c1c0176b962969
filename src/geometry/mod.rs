//! Geometry of the classification layer, pure f64 (no deep-learning
//! dependency): is the class weight `w_c` the centre of class c?
//!
//! Legend: `B` batch, `N` samples, `D` feature dim, `C` classes. Features
//! are row-major `N x D` slices (f32 or f64), labels `usize < C`, weights a
//! [`Matrix`] `C x D` (row c = `w_c`). Angles are in degrees unless the name
//! says `_rad`. Formulas: field notes §2 (symmetrical layer), §4 (metrics),
//! §5 (landscape, rotors).
//!
//! - [`stats`]: one-pass class statistics (`mu_c`, `mu_G`, `Sigma_W`, `Sigma_B`)
//! - [`angles`]: angles, compactness, separation
//! - [`collapse`]: NC1-NC4, symmetry conditions
//! - [`polygon`]: polygon / ETF / polytope weights, `p_max`
//! - [`rotor`]: bivectors and rotors
//! - [`landscape`]: softmax landscape and softmax centre
//! - [`analysis`]: everything at once ([`analyze`])
//! - [`linalg`], [`error`]: matrix, eigen-decomposition, errors

pub mod analysis;
pub mod angles;
pub mod collapse;
pub mod error;
pub mod landscape;
pub mod linalg;
pub mod polygon;
pub mod rotor;
pub mod stats;

pub use analysis::{
    Analysis, ClassAnalysis, HeadForm, NcMetrics, Precision, SecondPass, SecondPassInfo, analyze,
    build_head, second_pass,
};
pub use error::{GeometryError, Result};
pub use landscape::{CosineHead, HeadLogits, LinearHead};
pub use linalg::Matrix;
pub use stats::ClassStats;

#[cfg(test)]
mod proptests;

/// The tests' pseudo-random numbers: one fixed LCG, no dependency.
/// Reads `null` as NaN: serde_json writes a non-finite f64 as `null`, and
/// an analysis read back (a probe line, a checkpoint) must take it.
pub fn nan_as_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
pub(crate) mod test_rng {
    /// Next value in [-1, 1) of the LCG with state `seed`.
    pub(crate) fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}
