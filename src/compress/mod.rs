//! Compression of trained weights (field notes §8): post-training
//! discretisation with linear or exponential levels (`levels.rs`, Malsagov
//! et al. 2019), the sizes after entropy coding (`coder.rs`), a
//! quantization card per model (`card.rs`, Garg et al. 2021), the
//! discretised model on disk (`saved.rs`) and `symfeat quantize`
//! (`quantize.rs`). The compressibility loss that prepares weights for it
//! is a training regulariser (`crate::train::regularizer`).

pub mod card;
pub mod coder;
pub mod levels;
pub mod quantize;
pub mod saved;

pub use levels::{Criterion, Levels, Scheme};
pub use quantize::{Granularity, QuantizeOptions, Results, run_quantize};
