//! `DatasetKind`: the data sets symfeat reads, their class counts, class
//! names, default locations and file names.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

/// Folder of the Debian package `dataset-fashion-mnist`.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A supported data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// Fashion-MNIST: 28x28 grey, 10 classes, IDX files.
    FashionMnist,
    /// MNIST: 28x28 grey, 10 classes, IDX files.
    Mnist,
    /// CIFAR-10: 32x32 RGB, 10 classes, binary version.
    Cifar10,
    /// CIFAR-100: 32x32 RGB, 100 fine classes, binary version.
    Cifar100,
}

/// Error of `DatasetKind::from_str`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown data set `{0}`, expected one of fashion-mnist, mnist, cifar10, cifar100")]
pub struct ParseDatasetKindError(pub String);

impl DatasetKind {
    /// All kinds, in the order of the CLI help.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::FashionMnist,
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
    ];

    /// Name used on the command line and in run folders.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
        }
    }

    /// Number of classes (CIFAR-100: the 100 fine labels).
    pub fn num_classes(&self) -> usize {
        match self {
            DatasetKind::Cifar100 => 100,
            _ => 10,
        }
    }

    /// Image channels (1 grey, 3 RGB).
    pub fn channels(&self) -> usize {
        match self {
            DatasetKind::FashionMnist | DatasetKind::Mnist => 1,
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => 3,
        }
    }

    /// Where the data lives when `--data` is not given: Fashion-MNIST's
    /// Debian package folder; `None` for the others, which users download.
    pub fn default_dir(&self) -> Option<PathBuf> {
        match self {
            DatasetKind::FashionMnist => Some(PathBuf::from(FASHION_MNIST_DIR)),
            _ => None,
        }
    }

    /// The files a data folder must hold, in words (for error messages).
    pub fn required_files(&self) -> &'static str {
        match self {
            DatasetKind::FashionMnist | DatasetKind::Mnist => {
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, \
                 t10k-labels-idx1-ubyte (each raw or .gz)"
            }
            DatasetKind::Cifar10 => {
                "data_batch_1.bin .. data_batch_5.bin and test_batch.bin \
                 (directly or in cifar-10-batches-bin/)"
            }
            DatasetKind::Cifar100 => "train.bin and test.bin (directly or in cifar-100-binary/)",
        }
    }

    /// Class names, indexed by label.
    ///
    /// CIFAR-100 uses the fine label names of the archive's `fine_label_names`
    /// (alphabetical, which is the label order).
    pub fn class_names(&self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::FashionMnist => &FASHION_MNIST_NAMES,
            DatasetKind::Mnist => &MNIST_NAMES,
            DatasetKind::Cifar10 => &CIFAR10_NAMES,
            DatasetKind::Cifar100 => &CIFAR100_NAMES,
        };
        names.iter().map(|s| (*s).to_owned()).collect()
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = ParseDatasetKindError;

    /// Parses the CLI name, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name() == lower)
            .ok_or_else(|| ParseDatasetKindError(s.to_owned()))
    }
}

const FASHION_MNIST_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const MNIST_NAMES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

const CIFAR10_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const CIFAR100_NAMES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in DatasetKind::ALL {
            assert_eq!(k.to_string().parse::<DatasetKind>(), Ok(k));
            assert_eq!(k.class_names().len(), k.num_classes());
        }
        assert_eq!("CIFAR10".parse::<DatasetKind>(), Ok(DatasetKind::Cifar10));
        let err = "imagenet".parse::<DatasetKind>().unwrap_err();
        assert!(err.to_string().contains("`imagenet`"), "{err}");
    }

    #[test]
    fn cifar100_names_sorted_and_unique() {
        // The archive's label order is the alphabetical order of the names.
        let names = DatasetKind::Cifar100.class_names();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "not strictly sorted");
    }

    #[test]
    fn default_dirs() {
        assert_eq!(
            DatasetKind::FashionMnist.default_dir(),
            Some(PathBuf::from("/usr/share/datasets/fashion-mnist"))
        );
        assert_eq!(DatasetKind::Cifar10.default_dir(), None);
    }
}
