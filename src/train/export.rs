//! Exports for other tools: NPY arrays (features, labels, weights) and the
//! final weights as safetensors, both written atomically.

use anyhow::{Context, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use ndarray::{Array1, Array2};
use ndarray_npy::WriteNpyExt;
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;

/// Write an `rows x cols` float32 array as NPY.
pub fn write_npy_f32(path: &Path, data: Vec<f32>, rows: usize, cols: usize) -> Result<()> {
    let arr = Array2::from_shape_vec((rows, cols), data).with_context(|| {
        format!(
            "{}: data does not have shape {rows} x {cols}",
            path.display()
        )
    })?;
    crate::atomic::write_with(path, |w| arr.write_npy(w).map_err(std::io::Error::other))?;
    Ok(())
}

/// Write a vector of int64 as NPY.
pub fn write_npy_i64(path: &Path, data: Vec<i64>) -> Result<()> {
    let arr = Array1::from_vec(data);
    crate::atomic::write_with(path, |w| arr.write_npy(w).map_err(std::io::Error::other))?;
    Ok(())
}

/// Collects every float parameter with its dotted module path.
struct Collector {
    /// Field names from the root (enum variants skipped).
    path: Vec<String>,
    /// Container types of the modules we are in.
    containers: Vec<String>,
    tensors: Vec<F32Entry>,
    /// The first tensor the device could not give back.
    error: Option<String>,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.containers.pop();
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let in_linear = self
            .containers
            .iter()
            .rev()
            .take(2)
            .any(|t| t == "Struct:Linear");
        let is_weight = self.path.last().is_some_and(|p| p == "weight");
        // burn stores Linear weights as [in, out]; PyTorch as [out, in].
        let t: Tensor<B, D> = if in_linear && is_weight && D == 2 {
            param.val().swap_dims(0, 1)
        } else {
            param.val()
        };
        let shape = t.dims().to_vec();
        let values: Vec<f32> = match t.into_data().convert::<f32>().to_vec() {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(format!("{e:?}"));
                vec![]
            }
        };
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let name = if self.path.is_empty() {
            format!("param{}", self.tensors.len())
        } else {
            self.path.join(".")
        };
        self.tensors.push((name, shape, bytes));
    }
}

/// One float32 tensor for safetensors: name, shape, little-endian bytes.
pub type F32Entry = (String, Vec<usize>, Vec<u8>);

/// Every float parameter of `module` as float32 safetensors entries,
/// Linear weights transposed to PyTorch's `[out, in]`; `what` names the
/// destination in errors.
pub fn collect_f32<B: Backend, M: Module<B>>(module: &M, what: &Path) -> Result<Vec<F32Entry>> {
    let mut c = Collector {
        path: vec![],
        containers: vec![],
        tensors: vec![],
        error: None,
    };
    module.visit(&mut c);
    if let Some(e) = c.error {
        anyhow::bail!(
            "cannot read a parameter back from the device for {}: {e}",
            what.display()
        );
    }
    Ok(c.tensors)
}

/// Serialise `(name, dtype, shape, bytes)` entries with `metadata` to
/// `path`, atomically.
pub fn write_safetensors(
    path: &Path,
    entries: &[(String, Dtype, Vec<usize>, Vec<u8>)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<()> {
    let views = entries
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            Ok((name.clone(), TensorView::new(*dtype, shape.clone(), bytes)?))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .context("building safetensors views")?;
    let bytes = safetensors::serialize(views, &metadata).context("serialising safetensors")?;
    crate::atomic::write(path, &bytes)?;
    Ok(())
}

/// Write every float parameter of `module` to `path` as safetensors
/// (float32; Linear weights transposed to PyTorch's `[out, in]`), loadable
/// with `safetensors.torch.load_file`.
pub fn export_safetensors<B: Backend, M: Module<B>>(module: &M, path: &Path) -> Result<()> {
    let entries: Vec<_> = collect_f32(module, path)?
        .into_iter()
        .map(|(n, s, b)| (n, Dtype::F32, s, b))
        .collect();
    write_safetensors(path, &entries, None)
}
