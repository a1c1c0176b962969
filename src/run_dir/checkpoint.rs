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

use crate::run_dir::{EpochMetrics, ProbeLine};
use crate::train::TrainConfig;
use anyhow::{Context, Result, bail};
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
    /// it builds with it before loading, see `crate::train::check_fits`.
    #[serde(default)]
    pub param_shapes: Vec<(String, Vec<usize>)>,
    /// The configuration of the run that wrote the checkpoint (absent in
    /// older checkpoints), to say which option differs when a resume does
    /// not fit.
    #[serde(default)]
    pub config: Option<TrainConfig>,
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
