//! Checkpoints: everything `--resume` needs, in one file written atomically.
//!
//! Layout of `checkpoint.bin` (little endian):
//! `b"SYMFEAT-CKPT-1\n"`, then three sections, each a `u64` length followed by
//! its bytes: the JSON [`CheckpointState`], the model record and the
//! optimizer record (burn named-MessagePack); last, a `u32` CRC-32 of all the
//! preceding bytes. A truncated or corrupted file is a clear error, never a
//! panic.
//!
//! RNG state: the epoch order and the augmentation stream are pure functions
//! of `(seed, epoch)` (see `crate::data::epoch_order`), and the backend RNG
//! is only used at initialisation, so `seed` and `epochs_done` are the whole
//! RNG state.

use super::EpochMetrics;
use super::TrainConfig;
use super::run::ProbeLine;
use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

const MAGIC: &[u8] = b"SYMFEAT-CKPT-1\n";

/// The non-tensor part of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimizer steps completed.
    pub global_step: usize,
    /// Seed of the run (the RNG state, see the module docs).
    pub seed: u64,
    /// Metrics of every completed epoch.
    pub history: Vec<EpochMetrics>,
    /// Probe lines of every completed epoch.
    #[serde(default)]
    pub probe: Vec<ProbeLine>,
    /// Path and shape of every parameter of the model that wrote the
    /// checkpoint (empty in older checkpoints): a resume compares the model
    /// it builds with it before loading, see [`check_fits`].
    #[serde(default)]
    pub param_shapes: Vec<(String, Vec<usize>)>,
    /// The configuration of the run that wrote the checkpoint (absent in
    /// older checkpoints), to say which option differs when a resume does
    /// not fit.
    #[serde(default)]
    pub config: Option<TrainConfig>,
}

/// Collects the path (enum variants included) and shape of every parameter.
struct Shapes {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>)>,
}

impl Shapes {
    fn push(&mut self, shape: Vec<usize>) {
        self.out.push((self.path.join("."), shape));
    }
}

impl<B: Backend> ModuleVisitor<B> for Shapes {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.push(param.val().dims().to_vec());
    }
    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.push(param.val().dims().to_vec());
    }
    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.push(param.val().dims().to_vec());
    }
}

/// Path and shape of every parameter of `module`, in visiting order.
pub fn param_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    let mut v = Shapes {
        path: vec![],
        out: vec![],
    };
    module.visit(&mut v);
    v.out
}

/// Options that decide the model's structure: a resume may change the
/// others (epochs, lr, momentum, schedule...), not these.
fn structural_diffs(old: &TrainConfig, new: &TrainConfig) -> Vec<String> {
    let mut diffs = vec![];
    let mut cmp = |name: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{name} = {a} in the checkpoint, {b} now"));
        }
    };
    cmp(
        "dataset",
        format!("{:?}", old.dataset),
        format!("{:?}", new.dataset),
    );
    cmp("net", format!("{:?}", old.net), format!("{:?}", new.net));
    if old.net == "lenet" || new.net == "lenet" {
        cmp(
            "feature-dim",
            old.feature_dim.to_string(),
            new.feature_dim.to_string(),
        );
    }
    cmp(
        "feature-act",
        format!("{:?}", old.feature_act),
        format!("{:?}", new.feature_act),
    );
    cmp("head", format!("{:?}", old.head), format!("{:?}", new.head));
    cmp(
        "head-param",
        format!("{:?}", old.head_params),
        format!("{:?}", new.head_params),
    );
    diffs
}

/// Check that a checkpoint written with `ck` fits the model built now (its
/// `shapes`) under `config`; `path` names the checkpoint in the error.
/// Loading a record into a model of another structure panics in burn or,
/// worse, silently trains the checkpoint's shapes under the new config.
pub fn check_fits(
    ck: &CheckpointState,
    shapes: &[(String, Vec<usize>)],
    config: &TrainConfig,
    path: &Path,
) -> Result<()> {
    let diffs = ck
        .config
        .as_ref()
        .map(|old| structural_diffs(old, config))
        .unwrap_or_default();
    let shape_diff = if ck.param_shapes.is_empty() {
        None
    } else {
        let first = ck.param_shapes.iter().zip(shapes).find(|(a, b)| a != b);
        match first {
            Some(((na, sa), (nb, sb))) if na == nb => Some(format!(
                "parameter {na} has shape {sa:?} in the checkpoint, {sb:?} here"
            )),
            Some(((na, _), (nb, _))) => Some(format!(
                "the checkpoint has parameter {na} where this model has {nb}"
            )),
            None if ck.param_shapes.len() != shapes.len() => Some(format!(
                "the checkpoint holds {} parameters, this model {}",
                ck.param_shapes.len(),
                shapes.len()
            )),
            None => None,
        }
    };
    // `feature_act` changes what the head sees without always changing a
    // shape (relu <-> linear): refused on its own (it is in `diffs`).
    let act_changed = ck
        .config
        .as_ref()
        .is_some_and(|old| old.feature_act != config.feature_act);
    if shape_diff.is_none() && !act_changed {
        return Ok(());
    }
    let mut what: Vec<String> = diffs;
    what.extend(shape_diff);
    bail!(
        "checkpoint {} does not fit this configuration: {}. Resume with the run's own \
         settings (epochs and training options such as lr or schedule may change; what \
         shapes the model, i.e. image size, net, feature-dim, feature-act, head and \
         learn_scale, may not), or start a new run with another --out",
        path.display(),
        what.join("; ")
    )
}

/// A checkpoint as bytes.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Progress and history.
    pub state: CheckpointState,
    /// Model record bytes.
    pub model: Vec<u8>,
    /// Optimizer record bytes.
    pub optim: Vec<u8>,
}

impl Checkpoint {
    /// Serialise to bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let state = serde_json::to_vec(&self.state)?;
        let mut out = Vec::with_capacity(
            MAGIC.len() + 28 + state.len() + self.model.len() + self.optim.len(),
        );
        out.extend_from_slice(MAGIC);
        for part in [&state, &self.model, &self.optim] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Parse bytes read from `path` (named in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |what: &str| anyhow::anyhow!("checkpoint {} is unusable: {what}", path.display());
        if bytes.len() < MAGIC.len() + 4 || !bytes.starts_with(MAGIC) {
            return Err(bad("not a symfeat checkpoint (bad magic)"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != crc {
            return Err(bad("checksum mismatch (truncated or corrupted file)"));
        }
        let mut rest = &body[MAGIC.len()..];
        let mut parts = Vec::with_capacity(3);
        for name in ["state", "model", "optimizer"] {
            if rest.len() < 8 {
                return Err(bad(&format!("{name} section missing")));
            }
            let (len, tail) = rest.split_at(8);
            let len = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
            let len = usize::try_from(len).ok().filter(|&l| l <= tail.len());
            let Some(len) = len else {
                return Err(bad(&format!("{name} section length exceeds the file")));
            };
            parts.push(tail[..len].to_vec());
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let optim = parts.pop().unwrap_or_default();
        let model = parts.pop().unwrap_or_default();
        let state = serde_json::from_slice(&parts[0]).map_err(|e| bad(&format!("state: {e}")))?;
        Ok(Self {
            state,
            model,
            optim,
        })
    }

    /// Write atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write(path, &self.to_bytes()?)?;
        Ok(())
    }

    /// Read from `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
        if bytes.is_empty() {
            bail!("checkpoint {} is empty", path.display());
        }
        Self::from_bytes(&bytes, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            state: CheckpointState {
                epochs_done: 2,
                global_step: 20,
                seed: 7,
                history: vec![],
                probe: vec![],
                param_shapes: vec![("net.fc.weight".into(), vec![4, 2])],
                config: Some(TrainConfig::default()),
            },
            model: vec![1, 2, 3],
            optim: vec![9; 10],
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap(), Path::new("x")).unwrap();
        assert_eq!(back.state, c.state);
        assert_eq!(back.model, c.model);
        assert_eq!(back.optim, c.optim);
    }

    /// Regression (issue #7): resuming with another head or net panicked in
    /// burn ("Can't parse record from a different variant"); another
    /// feature-dim silently trained the checkpoint's shapes.
    #[test]
    fn a_checkpoint_that_does_not_fit_is_an_error_naming_the_option() {
        let ck = sample().state;
        let p = Path::new("run/checkpoint.bin");
        let same = ck.param_shapes.clone();
        let cfg = TrainConfig::default();
        check_fits(&ck, &same, &cfg, p).unwrap();
        // Training options may change.
        let longer = TrainConfig {
            epochs: 50,
            lr: 0.001,
            ..TrainConfig::default()
        };
        check_fits(&ck, &same, &longer, p).unwrap();
        let other = vec![("net.fc.weight".to_string(), vec![4, 3])];
        let lenet = TrainConfig {
            net: "lenet".into(),
            feature_dim: 3,
            ..TrainConfig::default()
        };
        let e = check_fits(&ck, &other, &lenet, p).unwrap_err().to_string();
        for w in [
            "run/checkpoint.bin",
            "net = \"cnn\" in the checkpoint, \"lenet\" now",
            "feature-dim = 2 in the checkpoint, 3 now",
            "[4, 2] in the checkpoint, [4, 3] here",
        ] {
            assert!(e.contains(w), "{w:?} not in {e}");
        }
        // Older checkpoints carry neither list: nothing to compare.
        let old = CheckpointState {
            param_shapes: vec![],
            config: None,
            ..ck
        };
        check_fits(&old, &other, &lenet, p).unwrap();
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let bytes = sample().to_bytes().unwrap();
        for n in 0..bytes.len() {
            let e = Checkpoint::from_bytes(&bytes[..n], Path::new("ck.bin")).unwrap_err();
            assert!(e.to_string().contains("ck.bin"));
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(
                Checkpoint::from_bytes(&b, Path::new("ck.bin")).is_err(),
                "flip at {i}"
            );
        }
    }
}
