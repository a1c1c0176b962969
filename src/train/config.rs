//! `TrainConfig`: every option of `symfeat train`, readable from TOML.
//!
//! Order of precedence: built-in defaults < `--config FILE` < command-line
//! flags. [`TrainConfig::check`] is the only way to a [`ValidTrainConfig`],
//! so the trainer never sees a bad value.

use super::Schedule;
use super::regularizer::Regularizer;
use crate::backend::DeviceChoice;
use crate::data::DatasetKind;
use crate::heads::{HeadKind, HeadSpec};
use crate::nets::{Binarize, FeatureAct, NetKind};
use crate::statistics::{Convergence, convergence};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// All training options, as written to `config.toml` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// fashion-mnist, mnist, cifar10 or cifar100.
    pub dataset: String,
    /// Directory with the dataset files (default: the Debian package's for fashion-mnist).
    pub data: Option<PathBuf>,
    /// Backbone: mlp, lenet, cnn, resnet20/32/44/56/110.
    pub net: String,
    /// Feature dimension of lenet (2 for plots).
    pub feature_dim: usize,
    /// What the head sees: relu (the backbone's final activation), linear
    /// (none: signed features) or bn (BatchNorm1d, no activation).
    pub feature_act: String,
    /// Head: softmax or symmetrical.
    pub head: String,
    /// Head parameters (e.g. `s = 16.0`; flags also as true/false; the
    /// symmetrical layer's `init` also as "uniform"/"normal").
    #[serde(deserialize_with = "de_head_params")]
    pub head_params: BTreeMap<String, f64>,
    /// Training epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (dampening 0, as PyTorch).
    pub momentum: f64,
    /// Weight decay (L2 added to the gradient, as PyTorch's SGD), on all parameters.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Learning-rate schedule: const, cosine or multistep.
    pub schedule: String,
    /// Multistep milestones (epochs, 0-based: 80 applies from the 81st epoch).
    pub milestones: Vec<usize>,
    /// Multistep factor.
    pub gamma: f64,
    /// Linear warm-up epochs.
    pub warmup_epochs: usize,
    /// Seed of initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Use only the first N training images.
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    pub test_limit: Option<usize>,
    /// Random crop (pad 4) + horizontal flip; default: on for CIFAR, off otherwise.
    pub augment: Option<bool>,
    /// Input normalisation: "dataset" (per-channel mean/std of the training set) or "half" (0.5/0.5).
    pub normalize: String,
    /// CPU threads (default: all cores).
    pub threads: Option<usize>,
    /// cpu, cuda, cuda:N, vulkan, vulkan:N, vulkan:cpu (cargo feature `vulkan`), or libtorch (cargo feature `tch`).
    pub device: String,
    /// Run directory.
    pub out: PathBuf,
    /// Export test-set features, labels and class weights as NPY at the end.
    pub export_features: bool,
    /// Batch size for evaluation.
    pub eval_batch: usize,
    /// After each epoch, measure the head's geometry (angles, NC1-NC4) on the
    /// test set and a fixed training subset, into `probe.jsonl`.
    pub probe: bool,
    /// Size of the probe's fixed training subset (the first N training images).
    pub probe_train_samples: usize,
    /// Stop when the test accuracy has plateaued over the last N epochs
    /// (the convergence test of `study::convergence`); 0: train every epoch.
    pub plateau_window: usize,
    /// Slope (accuracy fraction per epoch) below which a curve counts as flat
    /// in the convergence test.
    pub plateau_slope: f64,
    /// After the plateau, train this many more epochs at lr x gamma, then stop
    /// (the final accuracy of a constant-rate run without its noise).
    pub plateau_anneal_epochs: usize,
    /// Weight regulariser on the backbone's conv and linear weights: none,
    /// l1 or compressibility (`train::regularizer`). Not written when none.
    #[serde(skip_serializing_if = "is_none_word")]
    pub regularizer: String,
    /// Its weight lambda (default: the regulariser's, see the README).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reg_weight: Option<f64>,
    /// A pruned backbone (written by `symfeat prune`): per channel group of
    /// the full backbone, the indices of the channels kept (see
    /// `nets::NetSpec::kept`). Not written when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels_kept: Option<Vec<Vec<usize>>>,
    /// Binary layers (1-bit weights and activations, field notes §8.2):
    /// none, sign (straight-through estimators) or recu (ReCU's clamp and
    /// tau schedule). Not written when none.
    #[serde(skip_serializing_if = "is_none_word")]
    pub binary: String,
    /// ReCU's tau at the first epoch (default 0.85; in (0.5, 1)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau_min: Option<f64>,
    /// ReCU's tau approached at the last epoch (default 0.99; in (0.5, 1)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau_max: Option<f64>,
}

fn is_none_word(s: &String) -> bool {
    s == "none"
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            dataset: "fashion-mnist".into(),
            data: None,
            net: "cnn".into(),
            feature_dim: 2,
            feature_act: "relu".into(),
            head: "softmax".into(),
            head_params: BTreeMap::new(),
            epochs: 5,
            batch: 128,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            schedule: "const".into(),
            milestones: vec![],
            gamma: 0.1,
            warmup_epochs: 0,
            seed: 0,
            train_limit: None,
            test_limit: None,
            augment: None,
            normalize: "dataset".into(),
            threads: None,
            device: "cpu".into(),
            out: PathBuf::from("runs/train"),
            export_features: false,
            eval_batch: 1000,
            probe: true,
            probe_train_samples: 2000,
            plateau_window: 0,
            plateau_slope: 0.001,
            plateau_anneal_epochs: 0,
            regularizer: "none".into(),
            reg_weight: None,
            channels_kept: None,
            binary: "none".into(),
            tau_min: None,
            tau_max: None,
        }
    }
}

/// Parse `NAME=VALUE` head parameters (`option` names the flag in errors).
/// `s=auto` means `p_max=0.99` (the symmetrical layer's automatic scale).
pub fn parse_head_params(items: &[String], option: &str) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for kv in items {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("{option} {kv:?}: expected NAME=VALUE"))?;
        let (k, v) = (k.trim(), v.trim());
        let (k, v) = head_param_word(k, v).map_err(|e| anyhow::anyhow!("{option} {kv:?}: {e}"))?;
        out.insert(k, v);
    }
    Ok(out)
}

/// One head parameter given as a word: a number, `true`/`false` (1/0),
/// `s=auto` (`p_max = 0.99`), the symmetrical layer's `init=uniform` (0) or
/// `init=normal` (1). Returns the stored name and value.
pub fn head_param_word(k: &str, v: &str) -> std::result::Result<(String, f64), String> {
    Ok(match (k, v) {
        ("s", "auto") => ("p_max".to_string(), 0.99),
        (_, "true") => (k.to_string(), 1.0),
        (_, "false") => (k.to_string(), 0.0),
        ("init", "uniform") => (k.to_string(), 0.0),
        ("init", "normal") => (k.to_string(), 1.0),
        _ => {
            let x: f64 = v.parse().map_err(|_| {
                format!("{v:?} is not a number (nor true/false, s=auto, init=uniform/normal)")
            })?;
            (k.to_string(), x)
        }
    })
}

/// `head_params` from TOML: numbers, booleans, or the words of [`head_param_word`].
pub fn de_head_params<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        N(f64),
        B(bool),
        S(String),
    }
    let raw = BTreeMap::<String, V>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let (k, x) = match v {
            V::N(x) => (k, x),
            V::B(b) => (k, if b { 1.0 } else { 0.0 }),
            V::S(s) => head_param_word(&k, &s)
                .map_err(|e| serde::de::Error::custom(format!("head parameter {k}: {e}")))?,
        };
        out.insert(k, x);
    }
    Ok(out)
}

/// Input normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// Per-channel mean and std of the training set.
    Dataset,
    /// Mean 0.5 and std 0.5 per channel (the authors' CIFAR code).
    Half,
}

/// A checked configuration: parsed names, validated ranges.
#[derive(Debug, Clone)]
pub struct ValidTrainConfig {
    /// The configuration as given (written to `config.toml`).
    pub raw: TrainConfig,
    /// Dataset.
    pub dataset: DatasetKind,
    /// Backbone.
    pub net: NetKind,
    /// Head and its resolved parameters.
    pub head: HeadSpec,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Input normalisation.
    pub normalize: Normalize,
    /// Device.
    pub device: DeviceChoice,
    /// Augmentation on or off.
    pub augment: bool,
    /// What the head sees.
    pub feature_act: FeatureAct,
    /// The weight regulariser and its weight.
    pub regularizer: (Regularizer, f64),
    /// Binary layers.
    pub binary: Binarize,
    /// ReCU's tau schedule: (tau_min, tau_max).
    pub tau: (f64, f64),
}

impl TrainConfig {
    /// Read a TOML file; unknown keys and wrong types are errors naming the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("cannot write the training configuration as TOML")
    }

    /// The plateau of a run trained with `plateau_window`, from its test
    /// accuracy per epoch: the first epoch count `k` at which the
    /// convergence test (`crate::statistics::convergence`) on epochs `..k`
    /// passes, with that test. The trainer checks after every epoch, so
    /// this is where it started annealing or stopped; the history alone
    /// decides it (no extra state to resume).
    pub fn plateau(&self, test_acc: &[f64]) -> Option<(usize, Convergence)> {
        if self.plateau_window == 0 {
            return None;
        }
        (self.plateau_window..=test_acc.len()).find_map(|k| {
            convergence(&test_acc[..k], self.plateau_window, self.plateau_slope)
                .filter(|c| c.converged())
                .map(|c| (k, c))
        })
    }

    /// Whether a run of this configuration with this test accuracy per
    /// epoch is complete: every epoch, or its plateau and the annealing
    /// epochs after it.
    pub fn complete(&self, test_acc: &[f64]) -> bool {
        test_acc.len() >= self.epochs
            || self
                .plateau(test_acc)
                .is_some_and(|(k, _)| test_acc.len() >= k + self.plateau_anneal_epochs)
    }

    /// Validate every field; the error names the option and what was expected.
    pub fn check(&self) -> Result<ValidTrainConfig> {
        let dataset: DatasetKind = self.dataset.parse().map_err(|_| {
            anyhow::anyhow!(
                "dataset {:?}: expected fashion-mnist, mnist, cifar10 or cifar100",
                self.dataset
            )
        })?;
        let Some(net) = NetKind::parse(&self.net) else {
            bail!("net {:?}: expected one of {}", self.net, NetKind::NAMES);
        };
        let Some(feature_act) = FeatureAct::parse(&self.feature_act) else {
            bail!(
                "feature-act {:?}: expected one of {}",
                self.feature_act,
                FeatureAct::NAMES
            );
        };
        if self.plateau_window == 1 || self.plateau_window == 2 {
            bail!(
                "plateau-window = {}: expected 0 (off) or at least 3 epochs (a slope needs a residual)",
                self.plateau_window
            );
        }
        if !(self.plateau_slope.is_finite() && self.plateau_slope >= 0.0) {
            bail!(
                "plateau-slope = {}: expected a finite number >= 0 (accuracy per epoch)",
                self.plateau_slope
            );
        }
        let Some(kind) = HeadKind::parse(&self.head) else {
            bail!(
                "head {:?}: expected one of {}",
                self.head,
                HeadKind::names()
            );
        };
        let head = HeadSpec {
            kind,
            params: self.head_params.clone(),
        };
        head.resolve()
            .map_err(|e| anyhow::anyhow!("head-param: {e}"))?;
        if self.epochs == 0 {
            bail!("epochs must be at least 1");
        }
        if self.batch == 0 || self.eval_batch == 0 {
            bail!("batch and eval-batch must be at least 1");
        }
        for (name, v) in [("lr", self.lr), ("gamma", self.gamma)] {
            if !(v.is_finite() && v > 0.0) {
                bail!("{name} = {v}: expected a finite number > 0");
            }
        }
        for (name, v) in [
            ("momentum", self.momentum),
            ("weight-decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("{name} = {v}: expected a finite number >= 0");
            }
        }
        if self.momentum >= 1.0 {
            bail!("momentum = {}: expected a value in [0, 1)", self.momentum);
        }
        if self.nesterov && self.momentum == 0.0 {
            bail!("nesterov needs momentum > 0");
        }
        if self.warmup_epochs >= self.epochs && self.warmup_epochs > 0 {
            bail!(
                "warmup-epochs = {} must be smaller than epochs = {}",
                self.warmup_epochs,
                self.epochs
            );
        }
        let schedule = Schedule::parse(&self.schedule, &self.milestones, self.gamma)?;
        let normalize = match self.normalize.as_str() {
            "dataset" => Normalize::Dataset,
            "half" => Normalize::Half,
            other => bail!("normalize {other:?}: expected dataset or half"),
        };
        if self.train_limit == Some(0) || self.test_limit == Some(0) {
            bail!("train-limit and test-limit must be at least 1");
        }
        if self.threads == Some(0) {
            bail!("threads must be at least 1");
        }
        let device = DeviceChoice::parse(&self.device)?;
        let Some(reg) = Regularizer::parse(&self.regularizer) else {
            bail!(
                "regularizer {:?}: expected none, l1 or compressibility",
                self.regularizer
            );
        };
        let reg_weight = self.reg_weight.unwrap_or(reg.default_weight());
        if !(reg_weight.is_finite() && reg_weight >= 0.0) {
            bail!("reg-weight = {reg_weight}: expected a finite number >= 0");
        }
        if reg == Regularizer::None && self.reg_weight.is_some_and(|w| w != 0.0) {
            bail!(
                "reg-weight = {reg_weight} without a regularizer: set --regularizer l1 or compressibility"
            );
        }
        let (binary, tau) = self.check_binary(net, reg)?;
        let augment = self.augment.unwrap_or(matches!(
            dataset,
            DatasetKind::Cifar10 | DatasetKind::Cifar100
        ));
        Ok(ValidTrainConfig {
            raw: self.clone(),
            dataset,
            net,
            head,
            schedule,
            normalize,
            device,
            augment,
            feature_act,
            regularizer: (reg, reg_weight),
            binary,
            tau,
        })
    }

    /// `binary`, `tau_min` and `tau_max`, checked against the net and the
    /// other options.
    fn check_binary(&self, net: NetKind, reg: Regularizer) -> Result<(Binarize, (f64, f64))> {
        let Some(binary) = Binarize::parse(&self.binary) else {
            bail!(
                "binary {:?}: expected one of {}",
                self.binary,
                Binarize::NAMES
            );
        };
        let tau = (self.tau_min.unwrap_or(0.85), self.tau_max.unwrap_or(0.99));
        for (name, v) in [("tau-min", tau.0), ("tau-max", tau.1)] {
            if !(v > 0.5 && v < 1.0) {
                bail!("{name} = {v}: expected a value in (0.5, 1) (ReCU's tau, field notes §8.2)");
            }
        }
        if tau.0 > tau.1 {
            bail!(
                "tau-min = {} > tau-max = {}: tau rises from tau-min to tau-max",
                tau.0,
                tau.1
            );
        }
        if !binary.binarizes() && (self.tau_min.is_some() || self.tau_max.is_some()) {
            bail!(
                "tau-min/tau-max without a binary net (binary = {}): set --binary recu (or sign)",
                binary.name()
            );
        }
        if binary == Binarize::None {
            return Ok((binary, tau));
        }
        if net == NetKind::Lenet {
            bail!(
                "binary = {}: not defined for net lenet (binary nets: mlp, cnn, resnet20/32/44/56/110)",
                binary.name()
            );
        }
        if reg != Regularizer::None && binary.binarizes() {
            bail!(
                "binary = {} with regularizer {}: a weight regulariser on the latent weights of a binary net is not supported",
                binary.name(),
                self.regularizer
            );
        }
        if self.channels_kept.is_some() {
            bail!(
                "binary = {}: binary nets cannot be pruned (channels_kept)",
                binary.name()
            );
        }
        Ok((binary, tau))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let c = TrainConfig::default();
        c.check().unwrap();
        let back: TrainConfig = toml::from_str(&c.to_toml().unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_rejected() {
        let e = toml::from_str::<TrainConfig>("epochz = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochz"), "{e}");
        let e = toml::from_str::<TrainConfig>("epochs = \"five\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochs") || e.contains("integer"), "{e}");
    }

    #[test]
    fn bad_values_name_the_option() {
        let cases: Vec<(TrainConfig, &str)> = vec![
            (
                TrainConfig {
                    net: "vgg".into(),
                    ..Default::default()
                },
                "net",
            ),
            (
                TrainConfig {
                    head: "foo".into(),
                    ..Default::default()
                },
                "head",
            ),
            (
                TrainConfig {
                    lr: -1.0,
                    ..Default::default()
                },
                "lr",
            ),
            (
                TrainConfig {
                    momentum: 1.5,
                    ..Default::default()
                },
                "momentum",
            ),
            (
                TrainConfig {
                    schedule: "linear".into(),
                    ..Default::default()
                },
                "schedule",
            ),
            (
                TrainConfig {
                    dataset: "imagenet".into(),
                    ..Default::default()
                },
                "dataset",
            ),
            (
                TrainConfig {
                    epochs: 0,
                    ..Default::default()
                },
                "epochs",
            ),
            (
                TrainConfig {
                    device: "tpu".into(),
                    ..Default::default()
                },
                "device",
            ),
            (
                TrainConfig {
                    head: "symmetrical".into(),
                    head_params: [("s".to_string(), -2.0)].into(),
                    ..Default::default()
                },
                "s",
            ),
            (
                TrainConfig {
                    head_params: [("m".to_string(), 0.5)].into(),
                    ..Default::default()
                },
                "m",
            ),
        ];
        for (c, word) in cases {
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains(word), "{word}: {e}");
        }
    }

    #[test]
    fn head_params_take_words_on_the_command_line_and_in_toml() {
        let items: Vec<String> = [
            "easy_margin=true",
            "detach_margin=false",
            "init=normal",
            "s=auto",
            "m=0.5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = parse_head_params(&items, "--head-param").unwrap();
        assert_eq!(p["easy_margin"], 1.0);
        assert_eq!(p["detach_margin"], 0.0);
        assert_eq!(p["init"], 1.0);
        assert_eq!(p["p_max"], 0.99);
        assert_eq!(p["m"], 0.5);
        let e = parse_head_params(&["m=big".to_string()], "--head-param")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--head-param") && e.contains("big"), "{e}");
        let c: TrainConfig = toml::from_str(
            "head = 'symmetrical'\nfeature_act = 'bn'\n[head_params]\ninit = 'uniform'\nlearn_scale = true\ns = 8\n",
        )
        .unwrap();
        assert_eq!(c.head_params["init"], 0.0);
        assert_eq!(c.head_params["learn_scale"], 1.0);
        assert_eq!(c.head_params["s"], 8.0);
        let v = c.check().unwrap();
        assert_eq!(v.feature_act, FeatureAct::Bn);
        let e = toml::from_str::<TrainConfig>("[head_params]\ninit = 'xavier'\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("init") && e.contains("xavier"), "{e}");
        for (c, word) in [
            (
                TrainConfig {
                    feature_act: "tanh".into(),
                    ..Default::default()
                },
                "feature-act",
            ),
            (
                TrainConfig {
                    plateau_window: 2,
                    ..Default::default()
                },
                "plateau-window",
            ),
            (
                TrainConfig {
                    plateau_slope: -1.0,
                    ..Default::default()
                },
                "plateau-slope",
            ),
        ] {
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains(word), "{word}: {e}");
        }
    }
}
