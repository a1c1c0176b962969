//! A discretised model on disk (`quantize --save`): safetensors with, per
//! quantised tensor `NAME`, `NAME.codes` (u8, the tensor's shape: bit 0 the
//! sign, the rest the magnitude code), `NAME.scale` and `NAME.q` (f32, one
//! per group) and `NAME.group` (u32, the group of each weight); every other
//! float tensor under its own name (f32); the level set in the metadata
//! (`symfeat_levels`, JSON). [`load`] gives back the dequantised values,
//! bit for bit those the quantiser computed with.

use super::levels::{GroupLevels, Levels};
use super::quantize::{Granularity, QTensor, Quantized};
use crate::tensors::NamedTensor;
use anyhow::{Context, Result, anyhow, bail};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const LEVELS_KEY: &str = "symfeat_levels";
const GRANULARITY_KEY: &str = "symfeat_granularity";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Write `q` (and the float tensors of `all` it does not quantise) to `path`, atomically.
pub fn save(path: &Path, q: &Quantized, all: &[NamedTensor]) -> Result<()> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![];
    for t in &q.tensors {
        owned.push((
            format!("{}.codes", t.name),
            Dtype::U8,
            t.shape.clone(),
            t.codes.clone(),
        ));
        let n = t.groups.len();
        let scale: Vec<f32> = t.groups.iter().map(|g| g.scale as f32).collect();
        let base: Vec<f32> = t.groups.iter().map(|g| g.q as f32).collect();
        owned.push((
            format!("{}.scale", t.name),
            Dtype::F32,
            vec![n],
            f32_bytes(&scale),
        ));
        owned.push((
            format!("{}.q", t.name),
            Dtype::F32,
            vec![n],
            f32_bytes(&base),
        ));
        let group: Vec<u8> = t.group_of.iter().flat_map(|g| g.to_le_bytes()).collect();
        owned.push((
            format!("{}.group", t.name),
            Dtype::U32,
            t.shape.clone(),
            group,
        ));
    }
    let names: Vec<&str> = q.tensors.iter().map(|t| t.name.as_str()).collect();
    for t in all.iter().filter(|t| !names.contains(&t.name.as_str())) {
        owned.push((
            t.name.clone(),
            Dtype::F32,
            t.shape.clone(),
            f32_bytes(&t.values),
        ));
    }
    let views = owned
        .iter()
        .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .context("building safetensors views")?;
    let meta: HashMap<String, String> = [
        (LEVELS_KEY.to_string(), serde_json::to_string(&q.levels)?),
        (
            GRANULARITY_KEY.to_string(),
            serde_json::to_string(&q.granularity)?,
        ),
    ]
    .into_iter()
    .collect();
    let bytes = safetensors::serialize(views, &Some(meta)).context("serialising safetensors")?;
    crate::atomic::write(path, &bytes)?;
    Ok(())
}

/// A saved discretised model: its level set and every tensor's values
/// (quantised ones dequantised).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The level set.
    pub levels: Levels,
    /// The scale groups.
    pub granularity: Granularity,
    /// Values by tensor name.
    pub values: BTreeMap<String, Vec<f32>>,
    /// Names of the quantised tensors.
    pub quantized: Vec<String>,
}

/// Read a file [`save`] wrote; errors name the file and the tensor.
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bad = |what: String| anyhow!("{}: {what}", path.display());
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let levels: Levels = meta
        .get(LEVELS_KEY)
        .ok_or_else(|| {
            bad(format!(
                "no {LEVELS_KEY} metadata: not a model `symfeat quantize --save` wrote"
            ))
        })
        .and_then(|s| serde_json::from_str(s).map_err(|e| bad(format!("{LEVELS_KEY}: {e}"))))?;
    levels.check().map_err(&bad)?;
    let granularity: Granularity = meta
        .get(GRANULARITY_KEY)
        .ok_or_else(|| bad(format!("no {GRANULARITY_KEY} metadata")))
        .and_then(|s| {
            serde_json::from_str(s).map_err(|e| bad(format!("{GRANULARITY_KEY}: {e}")))
        })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("{e}")))?;
    let get = |name: &str, dtype: Dtype| -> Result<(Vec<usize>, Vec<u8>)> {
        let t = st
            .tensor(name)
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        if t.dtype() != dtype {
            bail!(
                "{}: tensor {name} is {:?}, expected {dtype:?}",
                path.display(),
                t.dtype()
            );
        }
        Ok((t.shape().to_vec(), t.data().to_vec()))
    };
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let bases: Vec<&str> = st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_suffix(".codes"))
        .collect();
    let part_of_quantized = |name: &str| {
        bases.iter().any(|b| {
            [".scale", ".q", ".group"]
                .iter()
                .any(|s| name == format!("{b}{s}"))
        })
    };
    let mut values = BTreeMap::new();
    let mut quantized = vec![];
    for name in st.names() {
        if let Some(base) = name.strip_suffix(".codes") {
            let (shape, codes) = get(name, Dtype::U8)?;
            let (_, scale) = get(&format!("{base}.scale"), Dtype::F32)?;
            let (_, q) = get(&format!("{base}.q"), Dtype::F32)?;
            let (_, group) = get(&format!("{base}.group"), Dtype::U32)?;
            let (scale, q) = (f32s(&scale), f32s(&q));
            if scale.iter().any(|s| !(s.is_finite() && *s >= 0.0))
                || q.iter().any(|q| !(q.is_finite() && *q > 0.0 && *q <= 1.0))
            {
                bail!(
                    "{}: tensor {base}: its levels are not a scale >= 0 and a base in (0, 1]",
                    path.display()
                );
            }
            let group_of: Vec<u32> = group
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let k = levels.magnitudes();
            if scale.len() != q.len()
                || group_of.len() != codes.len()
                || group_of.iter().any(|&g| g as usize >= scale.len())
                || codes.iter().any(|&c| (c >> 1) as usize >= k)
            {
                bail!(
                    "{}: tensor {base}: codes, groups and levels do not fit each other",
                    path.display()
                );
            }
            let t = QTensor {
                name: base.to_string(),
                shape,
                codes,
                groups: scale
                    .iter()
                    .zip(&q)
                    .map(|(&s, &q)| GroupLevels {
                        scale: s as f64,
                        q: q as f64,
                    })
                    .collect(),
                group_of,
            };
            if values.insert(base.to_string(), t.values(&levels)).is_some() {
                bail!("{}: tensor {base} is stored twice", path.display());
            }
            quantized.push(base.to_string());
        } else if part_of_quantized(name) {
            continue;
        } else {
            let (_, b) = get(name, Dtype::F32)?;
            if values.insert(name.to_string(), f32s(&b)).is_some() {
                bail!("{}: tensor {name} is stored twice", path.display());
            }
        }
    }
    Ok(Loaded {
        levels,
        granularity,
        values,
        quantized,
    })
}
