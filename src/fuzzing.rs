//! Entry points of the fuzz targets (`fuzz/`, run with `cargo fuzz`) and of
//! the corpus regression test (`tests/fuzz_corpus.rs`): each feeds arbitrary
//! bytes to one parser, through a file as a user would. Errors are the
//! expected outcome; a panic, an abort or an unbounded allocation is a bug.
//!
//! Not part of the public API.

use crate::data::{DatasetKind, cifar, idx};
use crate::npy::{self, MatrixReader};
use crate::study::StudyConfig;
use crate::train::TrainConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One fuzz target: its name and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// The parsers that can be fuzzed, by target name.
pub const TARGETS: [Target; 4] = [
    ("idx", idx_file),
    ("cifar", cifar_file),
    ("npy", npy_file),
    ("config", config_file),
];

/// IDX images and labels, raw or gzip (the same bytes offered as both).
pub fn idx_file(data: &[u8]) {
    with_file(data, |path| {
        let _ = idx::read_images(path);
        let _ = idx::read_labels(path);
    });
}

/// CIFAR-10 and CIFAR-100 binary batches.
pub fn cifar_file(data: &[u8]) {
    with_file(data, |path| {
        let _ = cifar::read_batch(path, DatasetKind::Cifar10);
        let _ = cifar::read_batch(path, DatasetKind::Cifar100);
    });
}

/// NPY as a feature matrix (whole, and in chunks of 3 rows), a vector and labels.
pub fn npy_file(data: &[u8]) {
    with_file(data, |path| {
        if let Ok(m) = MatrixReader::open(path, "fuzz") {
            let _ = m.read_all();
        }
        if let Ok(mut m) = MatrixReader::open(path, "fuzz") {
            let mut out = Vec::new();
            while let Ok(n @ 1..) = m.next_chunk(3, &mut out) {
                assert_eq!(out.len(), n * m.cols(), "chunk size");
            }
        }
        let _ = npy::read_vector(path, "fuzz");
        let _ = npy::read_labels(path);
    });
}

/// TOML as a training configuration (parsed and checked) and as a study
/// (parsed and its grid expanded).
pub fn config_file(data: &[u8]) {
    with_file(data, |path| {
        if let Ok(c) = TrainConfig::from_file(path) {
            let _ = c.check();
            let _ = c.to_toml();
        }
        if let Ok(s) = StudyConfig::from_file(path) {
            let _ = s.runs(Path::new("fuzz-study"));
        }
    });
}

/// Writes `data` to a fresh temporary file, runs `f` on its path, removes it.
fn with_file(data: &[u8], f: impl FnOnce(&Path)) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path: PathBuf =
        std::env::temp_dir().join(format!("symfeat-fuzz-{}-{n}", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        f(&path);
    }
    let _ = std::fs::remove_file(&path);
}
