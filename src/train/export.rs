//! Exports for other tools: NPY arrays (features, labels, weights) and the
//! final weights as safetensors, both written atomically.

use anyhow::{Context, Result};
use burn::module::{Module, ModuleVisitor, ParamId};
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
    /// Container types of the modules we are in.
    stack: Vec<String>,
    tensors: Vec<(String, Vec<usize>, Vec<u8>)>,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.stack.push(container_type.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float_with_path<const D: usize>(
        &mut self,
        path: &[String],
        _id: ParamId,
        tensor: &Tensor<B, D>,
    ) {
        let in_linear = self.stack.last().is_some_and(|t| t == "Struct:Linear");
        let is_weight = path.last().is_some_and(|p| p == "weight");
        // burn stores Linear weights as [in, out]; PyTorch as [out, in].
        let t: Tensor<B, D> = if in_linear && is_weight && D == 2 {
            tensor.clone().swap_dims(0, 1)
        } else {
            tensor.clone()
        };
        let shape = t.dims().to_vec();
        let values: Vec<f32> = t.into_data().convert::<f32>().to_vec().unwrap_or_default();
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors.push((path.join("."), shape, bytes));
    }
}

/// Write every float parameter of `module` to `path` as safetensors
/// (float32; Linear weights transposed to PyTorch's `[out, in]`), loadable
/// with `safetensors.torch.load_file`.
pub fn export_safetensors<B: Backend, M: Module<B>>(module: &M, path: &Path) -> Result<()> {
    let mut c = Collector {
        stack: vec![],
        tensors: vec![],
    };
    module.visit(&mut c);
    let views = c
        .tensors
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .context("building safetensors views")?;
    let bytes = safetensors::serialize(views, &None).context("serialising safetensors")?;
    crate::atomic::write(path, &bytes)?;
    Ok(())
}
