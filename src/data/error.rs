//! `DataError`: every way reading a data set can fail, each naming the file
//! (or folder) and what was found against what was expected.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::kind::DatasetKind;

/// Result alias for the data module.
pub type Result<T> = std::result::Result<T, DataError>;

/// An error while locating, reading or checking data-set files.
///
/// Messages start with the file (or folder) they are about and say what
/// was found and what was expected, so a user can fix the input without
/// reading the source.
#[derive(Debug, Error)]
pub enum DataError {
    /// The operating system refused a read (missing permission, disk error).
    #[error("{path}: cannot read: {source}")]
    Io {
        /// File being read.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },

    /// The file starts with the gzip magic but does not decompress.
    #[error("{path}: gzip stream is corrupt: {source}")]
    Gzip {
        /// Compressed file.
        path: PathBuf,
        /// Error from the decompressor.
        #[source]
        source: io::Error,
    },

    /// The IDX magic number is not the one this reader expects.
    #[error("{path}: bad magic 0x{found:08x}, expected 0x{expected:08x} ({what}); {hint}")]
    BadMagic {
        /// File read.
        path: PathBuf,
        /// Magic number in the file.
        found: u32,
        /// Magic number expected.
        expected: u32,
        /// What the expected magic stands for.
        what: &'static str,
        /// What the found magic looks like.
        hint: String,
    },

    /// A header dimension is impossible or disagrees with another file.
    #[error("{path}: bad dimension: {what} is {found}, expected {expected}")]
    BadDimension {
        /// File read.
        path: PathBuf,
        /// Which dimension.
        what: &'static str,
        /// Value found.
        found: u64,
        /// Value (or range) expected.
        expected: String,
    },

    /// The file ends before the data its header announces.
    #[error("{path}: truncated: {found} bytes of {what}, expected {expected}")]
    Truncated {
        /// File read.
        path: PathBuf,
        /// Which part was short (header, pixel data, label data).
        what: &'static str,
        /// Bytes present.
        found: u64,
        /// Bytes announced.
        expected: u128,
    },

    /// The file holds more bytes than its header announces.
    #[error(
        "{path}: trailing bytes: more than the {expected} bytes of {what} the header announces"
    )]
    Trailing {
        /// File read.
        path: PathBuf,
        /// Which part was too long.
        what: &'static str,
        /// Bytes announced.
        expected: u128,
    },

    /// Image and label files of one split disagree on the count.
    #[error(
        "label count {labels} does not match image count {images} (files {labels_path} and {images_path})"
    )]
    CountMismatch {
        /// Label file.
        labels_path: PathBuf,
        /// Image file.
        images_path: PathBuf,
        /// Labels in the label file.
        labels: usize,
        /// Images in the image file.
        images: usize,
    },

    /// A label is not a valid class index.
    #[error("{path}: {which} {label} at index {index} is outside 0..{num_classes}")]
    LabelOutOfRange {
        /// File read.
        path: PathBuf,
        /// Which label ("label", "coarse label", "fine label").
        which: &'static str,
        /// Value found.
        label: u16,
        /// Record index (0-based).
        index: usize,
        /// Number of classes allowed.
        num_classes: usize,
    },

    /// A CIFAR binary file is not a whole number of records.
    #[error(
        "{path}: file length {len} is not a multiple of the record size {record} ({kind} binary format)"
    )]
    RecordSize {
        /// File read.
        path: PathBuf,
        /// File length in bytes.
        len: u64,
        /// Record size in bytes.
        record: usize,
        /// Data set whose format was assumed.
        kind: DatasetKind,
    },

    /// A CIFAR batch file is still gzip-compressed.
    #[error(
        "{path}: file is gzip-compressed, expected a raw {kind} binary batch; extract the archive (tar xzf) and pass the folder holding the .bin files"
    )]
    Compressed {
        /// File read.
        path: PathBuf,
        /// Data set whose format was expected.
        kind: DatasetKind,
    },

    /// `cifar::read_batch` was asked to read a non-CIFAR data set.
    #[error("{path}: {kind} is not stored in CIFAR binary format; use the IDX reader")]
    NotCifar {
        /// File that was to be read.
        path: PathBuf,
        /// Data set asked for.
        kind: DatasetKind,
    },

    /// A split holds no image at all (a header announcing 0 items, or empty
    /// CIFAR batch files): nothing to train or evaluate on.
    #[error("{path}: holds no {what}; expected at least 1")]
    Empty {
        /// File of the split (the image file, or the last CIFAR batch read).
        path: PathBuf,
        /// What is missing ("images", "training images", "test images").
        what: &'static str,
    },

    /// Train and test images have different sizes.
    #[error(
        "image size {train_h}x{train_w} in {train_path} differs from {test_h}x{test_w} in {test_path}"
    )]
    ShapeMismatch {
        /// Train image file.
        train_path: PathBuf,
        /// Test image file.
        test_path: PathBuf,
        /// Train image rows.
        train_h: usize,
        /// Train image columns.
        train_w: usize,
        /// Test image rows.
        test_h: usize,
        /// Test image columns.
        test_w: usize,
    },

    /// The data folder does not exist.
    #[error("{path}: data folder does not exist or is not a folder")]
    NotADirectory {
        /// Folder given.
        path: PathBuf,
    },

    /// A required file is absent from the data folder.
    #[error("{dir}: {name} not found (looked for {tried}); {kind} needs {files}")]
    MissingFile {
        /// Folder searched.
        dir: PathBuf,
        /// Logical file name.
        name: &'static str,
        /// Paths tried, comma-separated.
        tried: String,
        /// Data set being loaded.
        kind: DatasetKind,
        /// All files the data set needs.
        files: &'static str,
    },

    /// Fashion-MNIST was requested without `--data` and is not installed.
    #[error(
        "{dir}: Fashion-MNIST not found; install it with `sudo apt-get install dataset-fashion-mnist` (Debian package), or pass `--data DIR` holding the four IDX files"
    )]
    FashionMnistMissing {
        /// Default folder that was looked at.
        dir: PathBuf,
    },

    /// A data set without a default location was requested without `--data`.
    #[error("{kind} has no default location: `--data DIR` is required, and DIR must hold {files}")]
    DataDirRequired {
        /// Data set requested.
        kind: DatasetKind,
        /// Files DIR must hold.
        files: &'static str,
    },
}
