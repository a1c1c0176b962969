//! Data sets as bytes in memory, and batches of normalised `f32` for the
//! networks. Burn-free: the training loop turns a filled buffer into a
//! tensor.
//!
//! - `kind`: `DatasetKind` (names, classes, default folder, file names)
//! - `idx`, `cifar`: file-format readers; `file`: gzip sniffing, bounded reads
//! - `set`: `ImageSet` and `load` (find files, read both splits, check them)
//! - `augment`: random crop with zero padding + horizontal flip
//! - `batch`: `Normalizer`, `fill_batch`, `epoch_order`
//! - `error`: `DataError`, naming the file and what was found vs expected

mod augment;
mod batch;
pub mod cifar;
mod error;
mod file;
pub mod idx;
mod kind;
mod set;

pub use augment::{Augment, CropFlip};
pub use batch::{Normalizer, epoch_order, fill_batch};
pub use error::{DataError, Result};
pub use kind::{DatasetKind, FASHION_MNIST_DIR, ParseDatasetKindError};
pub use set::{ImageSet, load};
