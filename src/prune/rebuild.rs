//! Real removal: a model rebuilt with only the kept channels of each
//! prunable group (the producers' outputs, their BatchNorms or PReLUs, the
//! consumers' inputs; a ResNet stage's residual channels together, with
//! the option-A shortcuts re-routed, see `nets::ResNetConfig::kept`), and
//! the cost counts of a model.

use crate::backend::Cpu;
use crate::nets::{ChannelGroup, NetSpec};
use crate::tensors::{NamedTensor, collect, replace};
use crate::train::{Model, ValidTrainConfig, model};
use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a model costs: multiply-accumulates per image (backbone, see
/// `nets::Backbone::macs`, plus `D x C` for the head) and parameters
/// (weights, biases, BatchNorm's gamma and beta, PReLU slopes, the head's;
/// not BatchNorm's running statistics nor the center loss's centers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
}

struct CountParams {
    path: Vec<String>,
    params: u64,
}

impl<B: Backend> ModuleVisitor<B> for CountParams {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let leaf = self.path.last().map(String::as_str).unwrap_or("");
        let skip = matches!(leaf, "running_mean" | "running_var")
            || self.path.first().is_some_and(|p| p == "center");
        if !skip {
            self.params += param.val().shape().num_elements() as u64;
        }
    }
}

/// The cost of `model` on `h x w` images with `classes` classes.
pub fn cost<B: Backend>(model: &Model<B>, h: usize, w: usize, classes: usize, d: usize) -> Cost {
    let mut c = CountParams {
        path: vec![],
        params: 0,
    };
    model.visit(&mut c);
    Cost {
        macs: model.net.macs(h, w) + (d * classes) as u64,
        params: c.params,
    }
}

/// The cost of the model `spec` describes (built on the CPU, weights
/// unused).
pub fn cost_of(cfg: &ValidTrainConfig, spec: &NetSpec, classes: usize) -> Result<Cost> {
    let m = model::build::<Cpu>(cfg, spec, classes, &Default::default())?;
    Ok(cost(
        &m,
        spec.height,
        spec.width,
        classes,
        spec.feature_dim(),
    ))
}

/// `spec` with `keep[g]` (indices into the channels group `g` has in
/// `spec`) kept: the indices into the full backbone's groups.
pub fn compose(spec: &NetSpec, keep: &[Vec<usize>]) -> Result<NetSpec> {
    let full = spec.full_groups();
    if keep.len() != full.len() {
        bail!(
            "internal: {} keep lists for {} groups",
            keep.len(),
            full.len()
        );
    }
    let kept: Vec<Vec<usize>> = full
        .iter()
        .enumerate()
        .zip(keep)
        .map(|((g, (_, width)), k)| {
            let now: Vec<usize> = match &spec.kept {
                Some(kept) => kept[g].clone(),
                None => (0..*width).collect(),
            };
            k.iter().map(|&i| now[i]).collect()
        })
        .collect();
    let mut out = spec.clone();
    out.kept = Some(kept);
    out.check().context("pruned net")?;
    Ok(out)
}

/// `values` of shape `shape` with only `idx` kept along `axis`.
fn select_axis(values: &[f32], shape: &[usize], axis: usize, idx: &[usize]) -> Vec<f32> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let n = shape[axis];
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let start = (o * n + i) * inner;
            out.extend_from_slice(&values[start..start + inner]);
        }
    }
    out
}

/// Keep `idx` along `axis` of `t` (in place).
fn keep_axis(t: &mut NamedTensor, axis: usize, idx: &[usize]) {
    t.values = select_axis(&t.values, &t.shape, axis, idx);
    t.shape[axis] = idx.len();
}

/// The channels `keep` of `group` expanded to `per` inputs each.
fn expand(keep: &[usize], per: usize) -> Vec<usize> {
    keep.iter()
        .flat_map(|&k| (k * per..(k + 1) * per).collect::<Vec<_>>())
        .collect()
}

/// Slice `tensors` (a model's, by [`collect`]) to the kept channels of
/// `groups`: producers' outputs, norms, consumers' inputs.
pub fn slice_tensors(
    tensors: &mut [NamedTensor],
    groups: &[ChannelGroup],
    keep: &[Vec<usize>],
) -> Result<()> {
    let prefix = tensors
        .iter()
        .find_map(|t| {
            let rest = t.name.strip_prefix("net.")?;
            let (variant, _) = rest.split_once('.')?;
            Some(format!("net.{variant}."))
        })
        .context("internal: the model has no backbone tensors")?;
    let find = |tensors: &mut [NamedTensor], name: &str| -> Option<usize> {
        tensors.iter().position(|t| t.name == name)
    };
    for (g, k) in groups.iter().zip(keep) {
        for p in &g.producers {
            let w = find(tensors, &format!("{prefix}{p}.weight"))
                .with_context(|| format!("internal: producer {p} of group {} not found", g.name))?;
            let axis = if tensors[w].shape.len() == 2 { 1 } else { 0 };
            keep_axis(&mut tensors[w], axis, k);
            if let Some(b) = find(tensors, &format!("{prefix}{p}.bias")) {
                keep_axis(&mut tensors[b], 0, k);
            }
        }
        for norm in &g.norms {
            let start = format!("{prefix}{norm}.");
            let mut found = false;
            for t in tensors.iter_mut() {
                if t.name.starts_with(&start) && t.shape == [g.channels] {
                    keep_axis(t, 0, k);
                    found = true;
                }
            }
            if !found {
                bail!("internal: norm {norm} of group {} not found", g.name);
            }
        }
        for (c, per) in &g.consumers {
            let w = find(tensors, &format!("{prefix}{c}.weight"))
                .with_context(|| format!("internal: consumer {c} of group {} not found", g.name))?;
            if tensors[w].shape.len() == 2 {
                keep_axis(&mut tensors[w], 0, &expand(k, *per));
            } else {
                keep_axis(&mut tensors[w], 1, k);
            }
        }
    }
    Ok(())
}

/// `model` (built from `spec`) rebuilt with `keep[g]` of each group's
/// channels: the new model, of the returned spec, holds exactly the kept
/// slices of every tensor (the others unchanged).
pub fn rebuild<B: Backend>(
    model: &Model<B>,
    cfg: &ValidTrainConfig,
    spec: &NetSpec,
    keep: &[Vec<usize>],
    classes: usize,
    device: &B::Device,
) -> Result<(Model<B>, NetSpec)> {
    let groups = model.net.channel_groups();
    if keep.len() != groups.len() {
        bail!(
            "internal: {} keep lists for {} groups",
            keep.len(),
            groups.len()
        );
    }
    let mut tensors = collect(model)?;
    slice_tensors(&mut tensors, &groups, keep)?;
    let spec = compose(spec, keep)?;
    let fresh = model::build::<B>(cfg, &spec, classes, device)?;
    let values: BTreeMap<String, Vec<f32>> =
        tensors.into_iter().map(|t| (t.name, t.values)).collect();
    let rebuilt = replace(fresh, &values, device).context("rebuilding the pruned model")?;
    Ok((rebuilt, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_axis_keeps_the_listed_slices() {
        // [2, 3, 2]
        let v: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(
            select_axis(&v, &[2, 3, 2], 1, &[0, 2]),
            [0.0, 1.0, 4.0, 5.0, 6.0, 7.0, 10.0, 11.0]
        );
        assert_eq!(select_axis(&v, &[2, 3, 2], 0, &[1]), v[6..].to_vec());
        assert_eq!(expand(&[1, 3], 2), [2, 3, 6, 7]);
    }
}
