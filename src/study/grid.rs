//! The study grid: `study.toml` -> runs -> run directories.
//!
//! A grid is over named *variants*: a head, its parameters and any
//! training-option overrides (e.g. `feature_act`). A plain `heads` list is a
//! variant per head, named after it.
//!
//! ```toml
//! heads = ["softmax"]            # a variant each, named after the head
//! seeds = [0, 1, 2]
//! [[variants]]
//! name = "symmetrical-bn"        # [a-z0-9_-], unique
//! head = "symmetrical"
//! head_params = { init = "uniform" }
//! train = { feature_act = "bn" } # any `symfeat train` option but head, head_params,
//!                                # seed, out, dataset, net, export_features (the grid's)
//! nets = ["cnn"]                 # optional, default: train.net
//! datasets = ["fashion-mnist"]   # optional, default: train.dataset
//! [train]                        # any `symfeat train` option (TrainConfig)
//! epochs = 4
//! train_limit = 3000
//! [head_params.arcface]          # optional per-head parameters
//! s = 16.0
//! ```
//!
//! Each run lives in `OUT/runs/<dataset>-<net>-<variant>-seed<k>`. A run is
//! finished when its checkpoint holds every epoch (or its curve has
//! plateaued, with `plateau_window`) and its final files exist; then it is
//! skipped. A run with a partial checkpoint is resumed. A run
//! that diverges leaves `diverged.json` and the grid goes on; a run that
//! fails otherwise leaves `failed.json` (the grid goes on, the next study
//! retries it). Each run's directory is locked while a process looks at
//! and trains it: a run another process holds is skipped (`work.rs`).

use crate::train::TrainConfig;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A study: the grid axes and the shared training options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Heads to compare, a variant each with the head's name.
    #[serde(default)]
    pub heads: Vec<String>,
    /// Named variants (head, parameters, training overrides), after `heads`.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Seeds per head.
    pub seeds: Vec<u64>,
    /// Backbones (default: `train.net`).
    #[serde(default)]
    pub nets: Vec<String>,
    /// Datasets (default: `train.dataset`).
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Options shared by every run.
    #[serde(default)]
    pub train: TrainConfig,
    /// Per-head parameters of the `heads` variants, by head name.
    #[serde(default, deserialize_with = "de_per_head")]
    pub head_params: BTreeMap<String, BTreeMap<String, f64>>,
    /// Free text shown in the report (e.g. why these settings).
    #[serde(default)]
    pub description: String,
}

/// One variant of the grid: a head with its parameters and training overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name in run directories and the report (`[a-z0-9_-]+`).
    pub name: String,
    /// Head.
    pub head: String,
    /// Head parameters (as `--head-param`).
    #[serde(default, deserialize_with = "crate::train::de_head_params")]
    pub head_params: BTreeMap<String, f64>,
    /// Training options that differ from the study's `[train]`.
    #[serde(default)]
    pub train: toml::Table,
}

fn de_per_head<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, BTreeMap<String, f64>>, D::Error> {
    #[derive(Deserialize)]
    struct P(#[serde(deserialize_with = "crate::train::de_head_params")] BTreeMap<String, f64>);
    Ok(BTreeMap::<String, P>::deserialize(d)?
        .into_iter()
        .map(|(k, P(v))| (k, v))
        .collect())
}

impl Variant {
    /// `train` with this variant's head, parameters and overrides.
    pub fn apply(&self, train: &TrainConfig) -> Result<TrainConfig> {
        let what = || format!("variant {:?}", self.name);
        // The grid sets these itself (`datasets`, `nets`, `seeds`, the run's
        // directory, the exports the report reads): an override would be
        // silently replaced.
        for key in [
            "head",
            "head_params",
            "seed",
            "out",
            "dataset",
            "net",
            "export_features",
        ] {
            if self.train.contains_key(key) {
                bail!(
                    "{}: train.{key} cannot be overridden (set it on the variant or the grid)",
                    what()
                );
            }
        }
        let mut table = toml::Table::try_from(train).context("serialising the study's [train]")?;
        for (k, v) in &self.train {
            table.insert(k.clone(), v.clone());
        }
        let mut config: TrainConfig = table
            .try_into()
            .with_context(|| format!("{}: invalid train overrides", what()))?;
        config.head = self.head.clone();
        config.head_params = self.head_params.clone();
        Ok(config)
    }
}

/// One run of the grid.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Directory name under `runs/`.
    pub name: String,
    /// The variant it belongs to.
    pub variant: String,
    /// Its full configuration (checked).
    pub config: TrainConfig,
}

impl StudyConfig {
    /// Read `study.toml`; unknown keys are errors naming the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read study file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid study file {}", path.display()))
    }

    /// The variants of the grid: one per `heads` entry, then `variants`.
    pub fn all_variants(&self) -> Result<Vec<Variant>> {
        for head in self.head_params.keys() {
            if !self.heads.contains(head) {
                bail!(
                    "head_params.{head}: {head:?} is not in heads {:?}",
                    self.heads
                );
            }
        }
        let mut out: Vec<Variant> = self
            .heads
            .iter()
            .map(|h| Variant {
                name: h.clone(),
                head: h.clone(),
                head_params: self.head_params.get(h).cloned().unwrap_or_default(),
                train: Default::default(),
            })
            .collect();
        out.extend(self.variants.iter().cloned());
        let mut seen = std::collections::BTreeSet::new();
        for v in &out {
            let ok = !v.name.is_empty()
                && v.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !ok {
                bail!(
                    "variant name {:?}: expected lowercase letters, digits, '-' or '_'",
                    v.name
                );
            }
            if !seen.insert(v.name.clone()) {
                bail!(
                    "variant name {:?} is used twice (heads and variants share names)",
                    v.name
                );
            }
        }
        Ok(out)
    }

    /// Expand the grid (datasets x nets x variants x seeds), each run checked.
    pub fn runs(&self, out: &Path) -> Result<Vec<RunSpec>> {
        let variants = self.all_variants()?;
        if variants.is_empty() || self.seeds.is_empty() {
            bail!("a study needs at least one head or variant and one seed");
        }
        let datasets = if self.datasets.is_empty() {
            vec![self.train.dataset.clone()]
        } else {
            self.datasets.clone()
        };
        let nets = if self.nets.is_empty() {
            vec![self.train.net.clone()]
        } else {
            self.nets.clone()
        };
        let mut runs = vec![];
        for dataset in &datasets {
            for net in &nets {
                for variant in &variants {
                    let base = variant.apply(&self.train)?;
                    for &seed in &self.seeds {
                        let name = format!("{dataset}-{net}-{}-seed{seed}", variant.name);
                        let mut config = base.clone();
                        config.dataset = dataset.clone();
                        config.net = net.clone();
                        config.seed = seed;
                        config.out = out.join("runs").join(&name);
                        config.export_features = true;
                        config
                            .check()
                            .with_context(|| format!("study run {name}"))?;
                        runs.push(RunSpec {
                            name,
                            variant: variant.name.clone(),
                            config,
                        });
                    }
                }
            }
        }
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_expands_and_rejects_bad_studies() {
        let s: StudyConfig = toml::from_str(
            "heads = ['softmax', 'arcface']\nseeds = [0, 1]\n[train]\nepochs = 2\n[head_params.arcface]\ns = 16.0\n",
        )
        .unwrap();
        let runs = s.runs(Path::new("/tmp/x")).unwrap();
        assert_eq!(runs.len(), 4);
        assert_eq!(runs[2].name, "fashion-mnist-cnn-arcface-seed0");
        assert_eq!(runs[2].config.head_params["s"], 16.0);
        assert!(runs[0].config.head_params.is_empty());
        assert_eq!(
            runs[3].config.out,
            Path::new("/tmp/x/runs/fashion-mnist-cnn-arcface-seed1")
        );
        let bad: StudyConfig = toml::from_str("heads = ['nope']\nseeds = [0]\n").unwrap();
        let e = format!("{:#}", bad.runs(Path::new("/tmp/x")).unwrap_err());
        assert!(e.contains("nope"), "{e}");
        assert!(
            toml::from_str::<StudyConfig>("heads = ['softmax']\nseeds = [0]\nepochs = 3\n")
                .is_err()
        );
        let e = toml::from_str::<StudyConfig>(
            "heads = ['softmax']\nseeds = [0]\n[head_params.cosface]\ns = 1.0\n",
        )
        .unwrap()
        .runs(Path::new("/x"))
        .unwrap_err()
        .to_string();
        assert!(e.contains("cosface"), "{e}");
    }

    #[test]
    fn variants_carry_their_head_params_and_training_overrides() {
        let s: StudyConfig = toml::from_str(
            "heads = ['softmax']\nseeds = [0, 1]\n[train]\nepochs = 2\n\
             [[variants]]\nname = 'sym-bn'\nhead = 'symmetrical'\n\
             head_params = { init = 'normal', learn_scale = false }\ntrain = { feature_act = 'bn', lr = 0.01 }\n",
        )
        .unwrap();
        let runs = s.runs(Path::new("/tmp/x")).unwrap();
        assert_eq!(runs.len(), 4);
        assert_eq!(runs[0].variant, "softmax");
        assert_eq!(runs[0].config.feature_act, "relu");
        let bn = &runs[3];
        assert_eq!(bn.name, "fashion-mnist-cnn-sym-bn-seed1");
        assert_eq!(bn.variant, "sym-bn");
        assert_eq!(bn.config.head, "symmetrical");
        assert_eq!(bn.config.feature_act, "bn");
        assert_eq!(bn.config.lr, 0.01);
        assert_eq!(bn.config.epochs, 2);
        assert_eq!(bn.config.head_params["init"], 1.0);
        assert_eq!(bn.config.head_params["learn_scale"], 0.0);
        let bad = |extra: &str, word: &str| {
            let text = format!("heads = ['softmax']\nseeds = [0]\n{extra}");
            let e = match toml::from_str::<StudyConfig>(&text) {
                Ok(s) => format!("{:#}", s.runs(Path::new("/x")).unwrap_err()),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(word), "{word}: {e}");
        };
        bad(
            "[[variants]]\nname = 'a'\nhead = 'normface'\ntrain = { feature_actt = 'bn' }\n",
            "feature_actt",
        );
        bad(
            "[[variants]]\nname = 'a'\nhead = 'normface'\ntrain = { feature_act = 'tanh' }\n",
            "feature-act",
        );
        bad(
            "[[variants]]\nname = 'a'\nhead = 'normface'\ntrain = { head = 'softmax' }\n",
            "train.head",
        );
        bad(
            "[[variants]]\nname = 'softmax'\nhead = 'normface'\n",
            "used twice",
        );
        // #15: the grid replaced a variant's net silently.
        bad(
            "[[variants]]\nname = 'a'\nhead = 'normface'\ntrain = { net = 'lenet' }\n",
            "train.net cannot be overridden",
        );
        bad(
            "[[variants]]\nname = 'A b'\nhead = 'normface'\n",
            "variant name",
        );
        bad(
            "[[variants]]\nname = 'a'\nhead = 'symmetrical'\nhead_params = { init = 'xavier' }\n",
            "init",
        );
    }
}
