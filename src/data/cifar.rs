//! CIFAR-10 / CIFAR-100 "binary version" reader.
//!
//! CIFAR-10 records: 1 label byte + 3072 pixel bytes. CIFAR-100 records:
//! coarse label byte + fine label byte + 3072 pixel bytes; symfeat uses the
//! fine label (100 classes). Pixels are CHW, 3x32x32 (all red, all green,
//! all blue), which is also `ImageSet`'s layout, so they are copied as is.

use std::path::Path;

use super::error::{DataError, Result};
use super::file::GZIP_MAGIC;
use super::kind::DatasetKind;

/// Channels of a CIFAR image.
pub const CHANNELS: usize = 3;
/// Side of a CIFAR image.
pub const SIDE: usize = 32;
/// Pixel bytes of one CIFAR image (3x32x32).
pub const IMAGE_BYTES: usize = CHANNELS * SIDE * SIDE;
/// Number of CIFAR-100 coarse classes (checked, not returned).
pub const CIFAR100_COARSE_CLASSES: usize = 20;

/// CIFAR-10 training batch files.
pub const CIFAR10_TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// CIFAR-10 test batch file.
pub const CIFAR10_TEST: &str = "test_batch.bin";
/// Folder the CIFAR-10 archive extracts to.
pub const CIFAR10_SUBDIR: &str = "cifar-10-batches-bin";
/// CIFAR-100 training file.
pub const CIFAR100_TRAIN: &str = "train.bin";
/// CIFAR-100 test file.
pub const CIFAR100_TEST: &str = "test.bin";
/// Folder the CIFAR-100 archive extracts to.
pub const CIFAR100_SUBDIR: &str = "cifar-100-binary";

/// Bytes per record for `kind`, `None` when `kind` is not a CIFAR set.
pub fn record_size(kind: DatasetKind) -> Option<usize> {
    match kind {
        DatasetKind::Cifar10 => Some(1 + IMAGE_BYTES),
        DatasetKind::Cifar100 => Some(2 + IMAGE_BYTES),
        DatasetKind::FashionMnist | DatasetKind::Mnist => None,
    }
}

/// Reads one CIFAR binary file: returns `(pixels, labels)` with pixels CHW,
/// image after image (`labels.len() * 3072` bytes).
///
/// Checks that the length is a whole number of records and that every
/// label (for CIFAR-100 both coarse and fine) is in range.
pub fn read_batch(path: &Path, kind: DatasetKind) -> Result<(Vec<u8>, Vec<u16>)> {
    let Some(record) = record_size(kind) else {
        return Err(DataError::NotCifar {
            path: path.to_path_buf(),
            kind,
        });
    };
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.starts_with(&GZIP_MAGIC) {
        return Err(DataError::Compressed {
            path: path.to_path_buf(),
            kind,
        });
    }
    if bytes.len() % record != 0 {
        return Err(DataError::RecordSize {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
            record,
            kind,
        });
    }
    let n = bytes.len() / record;
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    let out_of_range = |which, label: u8, index, num_classes| DataError::LabelOutOfRange {
        path: path.to_path_buf(),
        which,
        label: u16::from(label),
        index,
        num_classes,
    };
    for (index, rec) in bytes.chunks_exact(record).enumerate() {
        let (label, which) = match kind {
            DatasetKind::Cifar100 => {
                if usize::from(rec[0]) >= CIFAR100_COARSE_CLASSES {
                    return Err(out_of_range(
                        "coarse label",
                        rec[0],
                        index,
                        CIFAR100_COARSE_CLASSES,
                    ));
                }
                (rec[1], "fine label")
            }
            _ => (rec[0], "label"),
        };
        if usize::from(label) >= kind.num_classes() {
            return Err(out_of_range(which, label, index, kind.num_classes()));
        }
        labels.push(u16::from(label));
        pixels.extend_from_slice(&rec[record - IMAGE_BYTES..]);
    }
    Ok((pixels, labels))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bytes of a CIFAR file whose image `i` has every pixel of channel `c`
    /// equal to `i * 3 + c` (mod 256).
    pub(crate) fn cifar_bytes(kind: DatasetKind, labels: &[(u8, u8)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, &(coarse, fine)) in labels.iter().enumerate() {
            match kind {
                DatasetKind::Cifar100 => v.extend_from_slice(&[coarse, fine]),
                _ => v.push(fine),
            }
            for c in 0..CHANNELS {
                v.extend(std::iter::repeat_n(((i * 3 + c) % 256) as u8, SIDE * SIDE));
            }
        }
        v
    }

    #[test]
    fn cifar10_valid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data_batch_1.bin");
        std::fs::write(&p, cifar_bytes(DatasetKind::Cifar10, &[(0, 3), (0, 9)])).unwrap();
        let (px, labels) = read_batch(&p, DatasetKind::Cifar10).unwrap();
        assert_eq!(labels, [3, 9]);
        assert_eq!(px.len(), 2 * IMAGE_BYTES);
        // Image 1, channel 2 (blue) plane.
        assert!(
            px[IMAGE_BYTES + 2 * 1024..2 * IMAGE_BYTES]
                .iter()
                .all(|&p| p == 5)
        );
        assert_eq!(px[0], 0);
        assert_eq!(px[1024], 1);
    }

    #[test]
    fn cifar100_valid_uses_fine_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train.bin");
        std::fs::write(
            &p,
            cifar_bytes(DatasetKind::Cifar100, &[(19, 99), (4, 0), (0, 57)]),
        )
        .unwrap();
        let (px, labels) = read_batch(&p, DatasetKind::Cifar100).unwrap();
        assert_eq!(labels, [99, 0, 57]);
        assert_eq!(px.len(), 3 * IMAGE_BYTES);
        assert_eq!(px[2 * IMAGE_BYTES + 1024], 7);
    }

    #[test]
    fn short_record() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [DatasetKind::Cifar10, DatasetKind::Cifar100] {
            let p = dir.path().join(format!("{kind}.bin"));
            let mut b = cifar_bytes(kind, &[(1, 1), (1, 2)]);
            b.pop();
            std::fs::write(&p, &b).unwrap();
            let err = read_batch(&p, kind).unwrap_err();
            let record = record_size(kind).unwrap();
            let msg = err.to_string();
            assert!(matches!(err, DataError::RecordSize { .. }), "{msg}");
            assert!(
                msg.contains(&format!(
                    "file length {} is not a multiple of the record size {record}",
                    2 * record - 1
                )),
                "{msg}"
            );
            assert!(msg.contains(&format!("{kind}.bin")), "{msg}");
        }
    }

    #[test]
    fn labels_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.bin");
        std::fs::write(&p, cifar_bytes(DatasetKind::Cifar10, &[(0, 1), (0, 10)])).unwrap();
        let msg = read_batch(&p, DatasetKind::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("label 10 at index 1 is outside 0..10"),
            "{msg}"
        );

        std::fs::write(&p, cifar_bytes(DatasetKind::Cifar100, &[(0, 100)])).unwrap();
        let msg = read_batch(&p, DatasetKind::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("fine label 100 at index 0 is outside 0..100"),
            "{msg}"
        );

        std::fs::write(&p, cifar_bytes(DatasetKind::Cifar100, &[(0, 1), (20, 5)])).unwrap();
        let msg = read_batch(&p, DatasetKind::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("coarse label 20 at index 1 is outside 0..20"),
            "{msg}"
        );
    }

    #[test]
    fn gzip_and_wrong_kind_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.bin");
        let b = cifar_bytes(DatasetKind::Cifar10, &[(0, 1)]);
        std::fs::write(&p, super::super::idx::tests::gzip(&b)).unwrap();
        let err = read_batch(&p, DatasetKind::Cifar10).unwrap_err();
        assert!(matches!(err, DataError::Compressed { .. }), "{err}");
        let err = read_batch(&p, DatasetKind::Mnist).unwrap_err();
        assert!(matches!(err, DataError::NotCifar { .. }), "{err}");
    }
}
