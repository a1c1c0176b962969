//! The float tensors of a burn module as `compress` and the regularisers see them: every float tensor of the
//! module tree by name (the parameter path of the checkpoint, e.g.
//! `net.Cnn.conv1.weight`), its shape and layout, read to the host and
//! written back.
//!
//! Which tensors are weights: every rank-2 and rank-4 float parameter of
//! the backbone and the head (the convolutions' `[out, in, kh, kw]`, the
//! linear layers' `[in, out]` as burn stores them, the cosine heads' and the
//! fixed heads' `[C, D]` class weights). Rank-1 tensors (biases, BatchNorm's
//! parameters and running statistics, PReLU slopes, the symmetrical layer's
//! plane vectors `v1, v2`) and the center loss's centers (not used at
//! inference) stay float.

use anyhow::{Result, anyhow};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use std::collections::BTreeMap;

/// One float tensor of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Parameter path.
    pub name: String,
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Values, row-major as stored.
    pub values: Vec<f32>,
    /// A weight of a conv or linear layer (see the module docs).
    pub weight: bool,
    /// Stored `[in, out]` (burn's `Linear`): an output channel is a column.
    pub column_channels: bool,
}

impl NamedTensor {
    /// The output-channel groups: index lists into `values`.
    pub fn channels(&self) -> Vec<Vec<usize>> {
        channel_indices(&self.shape, self.column_channels)
    }
}

/// The output channels of a tensor of `shape` stored row-major: index
/// lists into its values (the columns of a linear layer's `[in, out]` with
/// `column_channels`, else the slices along the first axis).
pub fn channel_indices(shape: &[usize], column_channels: bool) -> Vec<Vec<usize>> {
    match (shape.len(), column_channels) {
        (2, true) => {
            let (rows, cols) = (shape[0], shape[1]);
            (0..cols)
                .map(|j| (0..rows).map(|i| i * cols + j).collect())
                .collect()
        }
        _ => {
            let out = shape.first().copied().unwrap_or(1).max(1);
            let per = shape.iter().product::<usize>() / out;
            (0..out)
                .map(|o| (o * per..(o + 1) * per).collect())
                .collect()
        }
    }
}

/// Collects every float tensor with its path and container.
struct Collect {
    path: Vec<(String, String)>,
    out: Vec<NamedTensor>,
    error: Option<String>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let name = self
            .path
            .iter()
            .map(|p| p.0.as_str())
            .collect::<Vec<_>>()
            .join(".");
        // The Linear module is the innermost container, or the one above
        // when burn enters the parameter field itself (as `export` does).
        let in_linear = self
            .path
            .iter()
            .rev()
            .take(2)
            .any(|p| p.1 == "Struct:Linear");
        let t = param.val();
        let shape = t.dims().to_vec();
        let values = match t.into_data().convert::<f32>().to_vec::<f32>() {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(format!("{name}: {e:?}"));
                vec![]
            }
        };
        let weight = (D == 2 || D == 4) && !name.starts_with("center");
        self.out.push(NamedTensor {
            name,
            shape,
            values,
            weight,
            column_channels: in_linear && D == 2,
        });
    }
}

/// Every float tensor of `module`, in visiting order; an error when the
/// device cannot give one back.
pub fn collect<B: Backend, M: Module<B>>(module: &M) -> Result<Vec<NamedTensor>> {
    let mut c = Collect {
        path: vec![],
        out: vec![],
        error: None,
    };
    module.visit(&mut c);
    match c.error {
        Some(e) => Err(anyhow!("cannot read a tensor back from the device: {e}")),
        None => Ok(c.out),
    }
}

/// Replaces the tensors named in `values` (same shapes), leaves the others.
struct Replace<'a, B: Backend> {
    path: Vec<String>,
    values: &'a BTreeMap<String, Vec<f32>>,
    device: B::Device,
    replaced: usize,
}

impl<B: Backend> ModuleMapper<B> for Replace<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.join(".");
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.values.get(&name) {
            Some(v) if v.len() == tensor.shape().num_elements() => {
                self.replaced += 1;
                let shape = tensor.shape();
                let new = Tensor::from_data(TensorData::new(v.clone(), shape), &self.device);
                // A trainable parameter stays one (on autodiff backends).
                if tensor.is_require_grad() {
                    new.require_grad()
                } else {
                    new
                }
            }
            _ => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// `module` with the tensors named in `values` replaced; the number of
/// tensors replaced must be `values.len()` (an error names the first
/// missing one).
pub fn replace<B: Backend, M: Module<B>>(
    module: M,
    values: &BTreeMap<String, Vec<f32>>,
    device: &B::Device,
) -> Result<M> {
    let mut r = Replace {
        path: vec![],
        values,
        device: device.clone(),
        replaced: 0,
    };
    let out = module.map(&mut r);
    if r.replaced != values.len() {
        let have = collect(&out)?;
        for (name, v) in values {
            match have.iter().find(|t| &t.name == name) {
                None => return Err(anyhow!("tensor {name:?} is not in this model")),
                Some(t) if t.values.len() != v.len() => {
                    return Err(anyhow!(
                        "tensor {name:?} has {} values, the model's {}",
                        v.len(),
                        t.values.len()
                    ));
                }
                Some(_) => {}
            }
        }
        return Err(anyhow!("a tensor name occurs twice in the model"));
    }
    Ok(out)
}
