//! `ImageSet` and `load`: find a data set's files, read both splits and
//! check that they agree (counts, image sizes, label range).

use std::path::{Path, PathBuf};

use super::cifar;
use super::error::{DataError, Result};
use super::idx;
use super::kind::DatasetKind;

/// One split of a data set in memory, as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixels, `n * channels * height * width` bytes, each image CHW.
    pub images: Vec<u8>,
    /// Class index of each image, `< num_classes`.
    pub labels: Vec<u16>,
    /// Number of images.
    pub n: usize,
    /// Channels per image (1 grey, 3 RGB).
    pub channels: usize,
    /// Image rows.
    pub height: usize,
    /// Image columns.
    pub width: usize,
    /// Number of classes of the data set (not only those present).
    pub num_classes: usize,
}

impl ImageSet {
    /// Bytes per image, `channels * height * width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Pixels of image `i` (CHW). Panics if `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// Keeps the first `limit` images (no-op when `limit >= n`); for smoke
    /// runs and subset experiments.
    pub fn truncate(&mut self, limit: usize) {
        if limit < self.n {
            self.n = limit;
            self.images.truncate(limit * self.image_len());
            self.labels.truncate(limit);
        }
    }
}

/// Loads the train and test splits of `kind`.
///
/// `dir` is the folder given by `--data`; without it Fashion-MNIST is read
/// from its Debian package folder, and the other sets are an error naming
/// the files `--data DIR` must hold.
///
/// IDX sets read `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or `.gz`
/// (raw preferred when both exist). CIFAR sets read their `.bin` files from
/// `dir` or from the folder their archive extracts to inside `dir`.
pub fn load(kind: DatasetKind, dir: Option<&Path>) -> Result<(ImageSet, ImageSet)> {
    load_with_default(kind, dir, kind.default_dir().as_deref())
}

/// `load` with the default folder as a parameter, so tests can point it
/// at a folder that does not exist.
pub(crate) fn load_with_default(
    kind: DatasetKind,
    dir: Option<&Path>,
    default: Option<&Path>,
) -> Result<(ImageSet, ImageSet)> {
    let dir = match (dir, default) {
        (Some(d), _) => {
            if !d.is_dir() {
                return Err(DataError::NotADirectory {
                    path: d.to_path_buf(),
                });
            }
            d
        }
        (None, Some(d)) if d.is_dir() => d,
        (None, default) => {
            return Err(match kind {
                DatasetKind::FashionMnist => DataError::FashionMnistMissing {
                    dir: default.map_or_else(
                        || PathBuf::from(super::kind::FASHION_MNIST_DIR),
                        Path::to_path_buf,
                    ),
                },
                _ => DataError::DataDirRequired {
                    kind,
                    files: kind.required_files(),
                },
            });
        }
    };
    match kind {
        DatasetKind::FashionMnist | DatasetKind::Mnist => load_idx(kind, dir),
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => load_cifar(kind, dir),
    }
}

/// Finds `name` or `name.gz` in `dir`, raw first.
fn find_idx(kind: DatasetKind, dir: &Path, name: &'static str) -> Result<PathBuf> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if raw.is_file() {
        return Ok(raw);
    }
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::MissingFile {
        dir: dir.to_path_buf(),
        name,
        tried: format!("{}, {}", raw.display(), gz.display()),
        kind,
        files: kind.required_files(),
    })
}

fn load_idx(kind: DatasetKind, dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let split = |images: &'static str, labels: &'static str| -> Result<(ImageSet, PathBuf)> {
        let images_path = find_idx(kind, dir, images)?;
        let labels_path = find_idx(kind, dir, labels)?;
        let (pixels, n, rows, cols) = idx::read_images(&images_path)?;
        if n == 0 {
            return Err(DataError::Empty {
                path: images_path,
                what: "images",
            });
        }
        let raw_labels = idx::read_labels(&labels_path)?;
        if raw_labels.len() != n {
            return Err(DataError::CountMismatch {
                labels_path,
                images_path,
                labels: raw_labels.len(),
                images: n,
            });
        }
        let labels = checked_labels(kind, &labels_path, &raw_labels)?;
        let set = ImageSet {
            images: pixels,
            labels,
            n,
            channels: 1,
            height: rows,
            width: cols,
            num_classes: kind.num_classes(),
        };
        Ok((set, images_path))
    };
    let (train, train_path) = split("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let (test, test_path) = split("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    if (train.height, train.width) != (test.height, test.width) {
        return Err(DataError::ShapeMismatch {
            train_path,
            test_path,
            train_h: train.height,
            train_w: train.width,
            test_h: test.height,
            test_w: test.width,
        });
    }
    Ok((train, test))
}

/// Widens labels to `u16`, checking each is a class index.
fn checked_labels(kind: DatasetKind, path: &Path, raw: &[u8]) -> Result<Vec<u16>> {
    let k = kind.num_classes();
    if let Some((index, &label)) = raw.iter().enumerate().find(|(_, l)| usize::from(**l) >= k) {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            which: "label",
            label: u16::from(label),
            index,
            num_classes: k,
        });
    }
    Ok(raw.iter().map(|&l| u16::from(l)).collect())
}

fn load_cifar(kind: DatasetKind, dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let (train_names, test_name, subdir): (&[&'static str], &'static str, &str) = match kind {
        DatasetKind::Cifar100 => (
            &[cifar::CIFAR100_TRAIN],
            cifar::CIFAR100_TEST,
            cifar::CIFAR100_SUBDIR,
        ),
        _ => (
            &cifar::CIFAR10_TRAIN,
            cifar::CIFAR10_TEST,
            cifar::CIFAR10_SUBDIR,
        ),
    };
    // The files sit in DIR, or in the folder the archive extracts to.
    let nested = dir.join(subdir);
    let base = if dir.join(test_name).is_file() || !nested.is_dir() {
        dir.to_path_buf()
    } else {
        nested.clone()
    };
    let read = |names: &[&'static str]| -> Result<ImageSet> {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        let mut last = base.clone();
        for &name in names {
            let path = base.join(name);
            if !path.is_file() {
                return Err(DataError::MissingFile {
                    dir: dir.to_path_buf(),
                    name,
                    tried: format!(
                        "{}, {}",
                        dir.join(name).display(),
                        nested.join(name).display()
                    ),
                    kind,
                    files: kind.required_files(),
                });
            }
            let (px, lb) = cifar::read_batch(&path, kind)?;
            images.extend_from_slice(&px);
            labels.extend_from_slice(&lb);
            last = path;
        }
        if labels.is_empty() {
            return Err(DataError::Empty {
                path: last,
                what: "records",
            });
        }
        Ok(ImageSet {
            n: labels.len(),
            images,
            labels,
            channels: cifar::CHANNELS,
            height: cifar::SIDE,
            width: cifar::SIDE,
            num_classes: kind.num_classes(),
        })
    };
    Ok((read(train_names)?, read(&[test_name])?))
}

#[cfg(test)]
mod tests {
    use super::super::cifar::tests::cifar_bytes;
    use super::super::idx::tests::{gzip, images_bytes, labels_bytes};
    use super::super::{DataError, Normalizer};
    use super::*;

    fn write_idx(dir: &Path, train: (u32, u32, &[u8]), test: (u32, u32, &[u8]), zip: bool) {
        for (prefix, (rows, cols, labels)) in [("train", train), ("t10k", test)] {
            let n = labels.len() as u32;
            let px: Vec<u8> = (0..n * rows * cols).map(|i| (i % 251) as u8).collect();
            let files = [
                (
                    format!("{prefix}-images-idx3-ubyte"),
                    images_bytes(n, rows, cols, &px),
                ),
                (format!("{prefix}-labels-idx1-ubyte"), labels_bytes(labels)),
            ];
            for (name, bytes) in files {
                if zip {
                    std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
                } else {
                    std::fs::write(dir.join(name), bytes).unwrap();
                }
            }
        }
    }

    #[test]
    fn idx_load_raw_and_gz() {
        for zip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_idx(dir.path(), (3, 2, &[0, 9, 4]), (3, 2, &[1, 1]), zip);
            let (train, test) = load(DatasetKind::Mnist, Some(dir.path())).unwrap();
            assert_eq!(
                (train.n, train.channels, train.height, train.width),
                (3, 1, 3, 2)
            );
            assert_eq!(train.labels, [0, 9, 4]);
            assert_eq!(train.images.len(), 18);
            assert_eq!(test.n, 2);
            assert_eq!(test.num_classes, 10);
            assert_eq!(train.image(1), &[6, 7, 8, 9, 10, 11]);
        }
    }

    #[test]
    fn idx_count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), (2, 2, &[0, 1, 2]), (2, 2, &[1]), false);
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            labels_bytes(&[0, 1]),
        )
        .unwrap();
        let err = load(DatasetKind::Mnist, Some(dir.path())).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    labels: 2,
                    images: 3,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("label count 2 does not match image count 3"),
            "{msg}"
        );
        assert!(msg.contains("train-labels-idx1-ubyte") && msg.contains("train-images-idx3-ubyte"));
    }

    #[test]
    fn idx_label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        write_idx(
            dir.path(),
            (2, 2, &[0, 1, 2, 3, 4, 12]),
            (2, 2, &[1]),
            false,
        );
        let msg = load(DatasetKind::FashionMnist, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("label 12 at index 5 is outside 0..10"),
            "{msg}"
        );
        assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
    }

    #[test]
    fn idx_shape_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), (28, 28, &[0]), (32, 32, &[1]), false);
        let err = load(DatasetKind::Mnist, Some(dir.path())).unwrap_err();
        assert!(matches!(err, DataError::ShapeMismatch { .. }), "{err}");
        assert!(err.to_string().contains("28x28"), "{err}");
    }

    #[test]
    fn idx_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), (2, 2, &[0]), (2, 2, &[1]), true);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let msg = load(DatasetKind::Mnist, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("t10k-labels-idx1-ubyte not found"), "{msg}");
        assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
    }

    #[test]
    fn idx_prefers_raw_when_both_exist() {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), (2, 2, &[0]), (2, 2, &[1]), true);
        write_idx(dir.path(), (2, 2, &[5, 6]), (2, 2, &[1]), false);
        let (train, _) = load(DatasetKind::Mnist, Some(dir.path())).unwrap();
        assert_eq!(train.labels, [5, 6]);
    }

    #[test]
    fn missing_default_and_data_dir_messages() {
        let nowhere = Path::new("/nonexistent/fashion-mnist");
        let msg = load_with_default(DatasetKind::FashionMnist, None, Some(nowhere))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(
                "install it with `sudo apt-get install dataset-fashion-mnist` (Debian package), \
                 or pass `--data DIR` holding the four IDX files"
            ),
            "{msg}"
        );
        assert!(msg.starts_with("/nonexistent/fashion-mnist"), "{msg}");

        for kind in [
            DatasetKind::Mnist,
            DatasetKind::Cifar10,
            DatasetKind::Cifar100,
        ] {
            let err = load(kind, None).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, DataError::DataDirRequired { .. }), "{msg}");
            assert!(msg.contains("`--data DIR` is required"), "{msg}");
        }
        let msg = load(DatasetKind::Cifar10, None).unwrap_err().to_string();
        assert!(
            msg.contains("data_batch_1.bin") && msg.contains("test_batch.bin"),
            "{msg}"
        );
        let msg = load(DatasetKind::Mnist, None).unwrap_err().to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");

        let err = load(DatasetKind::Mnist, Some(nowhere)).unwrap_err();
        assert!(matches!(err, DataError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn cifar10_load_flat_and_nested() {
        for nested in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let base = if nested {
                let d = dir.path().join("cifar-10-batches-bin");
                std::fs::create_dir(&d).unwrap();
                d
            } else {
                dir.path().to_path_buf()
            };
            for (i, name) in cifar::CIFAR10_TRAIN.iter().enumerate() {
                let labels = [(0, i as u8), (0, 9)];
                std::fs::write(base.join(name), cifar_bytes(DatasetKind::Cifar10, &labels))
                    .unwrap();
            }
            std::fs::write(
                base.join("test_batch.bin"),
                cifar_bytes(DatasetKind::Cifar10, &[(0, 7)]),
            )
            .unwrap();
            let (train, test) = load(DatasetKind::Cifar10, Some(dir.path())).unwrap();
            assert_eq!(
                (train.n, train.channels, train.height, train.width),
                (10, 3, 32, 32)
            );
            assert_eq!(train.labels, [0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
            assert_eq!(train.images.len(), 10 * 3072);
            assert_eq!(test.labels, [7]);
        }
    }

    #[test]
    fn cifar100_load_and_missing_batch() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("cifar-100-binary");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("train.bin"),
            cifar_bytes(DatasetKind::Cifar100, &[(3, 42)]),
        )
        .unwrap();
        let msg = load(DatasetKind::Cifar100, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("test.bin not found"), "{msg}");
        std::fs::write(
            d.join("test.bin"),
            cifar_bytes(DatasetKind::Cifar100, &[(1, 99)]),
        )
        .unwrap();
        let (train, test) = load(DatasetKind::Cifar100, Some(dir.path())).unwrap();
        assert_eq!(
            (train.labels.as_slice(), test.labels.as_slice()),
            (&[42u16][..], &[99u16][..])
        );
        assert_eq!(train.num_classes, 100);
    }

    /// Regression (issue #7): an empty split trained zero steps and then
    /// failed in the probe with an unrelated geometry error.
    #[test]
    fn empty_splits_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), (2, 2, &[]), (2, 2, &[1]), false);
        let err = load(DatasetKind::Mnist, Some(dir.path())).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("train-images-idx3-ubyte: holds no images; expected at least 1"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        for name in cifar::CIFAR10_TRAIN {
            std::fs::write(
                dir.path().join(name),
                cifar_bytes(DatasetKind::Cifar10, &[(0, 1)]),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("test_batch.bin"), []).unwrap();
        let msg = load(DatasetKind::Cifar10, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("test_batch.bin: holds no records"), "{msg}");
    }

    #[test]
    fn truncate_keeps_prefix() {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), (2, 2, &[0, 1, 2, 3]), (2, 2, &[1]), false);
        let (mut train, _) = load(DatasetKind::Mnist, Some(dir.path())).unwrap();
        let first = train.image(0).to_vec();
        train.truncate(10);
        assert_eq!(train.n, 4);
        train.truncate(2);
        assert_eq!((train.n, train.labels.len(), train.images.len()), (2, 2, 8));
        assert_eq!(train.image(0), first.as_slice());
    }

    /// The real data set from the Debian package; skipped when absent.
    #[test]
    fn real_fashion_mnist() {
        let Some(dir) = DatasetKind::FashionMnist
            .default_dir()
            .filter(|d| d.is_dir())
        else {
            eprintln!(
                "skipped: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
            );
            return;
        };
        let (train, test) = load(DatasetKind::FashionMnist, None).unwrap();
        assert_eq!((train.n, test.n), (60000, 10000), "{}", dir.display());
        assert_eq!((train.channels, train.height, train.width), (1, 28, 28));
        let mut counts = [0usize; 10];
        for &l in &train.labels {
            counts[usize::from(l)] += 1;
        }
        assert_eq!(counts, [6000; 10]);
        let norm = Normalizer::fit(&train);
        assert!(
            (norm.mean[0] - 0.2860).abs() < 1e-3,
            "mean {}",
            norm.mean[0]
        );
        assert!((norm.std[0] - 0.3530).abs() < 1e-3, "std {}", norm.std[0]);
    }
}
