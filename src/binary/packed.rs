//! A trained binary model with its binary layers packed: the export
//! (`packed.safetensors`) and the inference that runs those layers with
//! XNOR + popcount ([`crate::kernels::bitconv`]) while the first layer, the
//! BatchNorms, the shortcuts and the head stay float.
//!
//! `packed.safetensors` holds every float parameter of the model except the
//! binary layers' latent weights, which are replaced by `<path>.bits`
//! (uint64, `[O, words]`, bit `(ky kw + kx) C + c` of row `o`, 1 = +1; the
//! tail of each row zero); the layers' shapes are in the metadata
//! (`binary_layers`, JSON). The signs are taken from the model's own
//! binary weights (`BinaryConv::binary_weight`), so the packed and the
//! simulated model compute with the same +-1 values: their binary layers'
//! outputs are the same integers times the same alpha, hence the same
//! logits, bit for bit.

use crate::kernels::bitconv::{self, BitGeom, PackedWeights};
use crate::nets::binary::{BinaryConv, BinaryLinear};
use crate::nets::{Backbone, BinaryLayer, LayerRef, WeightTransform};
use crate::train::Model;
use anyhow::{Context, Result, bail};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use safetensors::tensor::Dtype;
use std::collections::HashMap;
use std::path::Path;

/// The bit shape of a binary layer, or why it has none.
fn geom<B: Backend>(layer: &BinaryLayer<'_, B>) -> Result<BitGeom> {
    Ok(match layer {
        BinaryLayer::Conv(c) => {
            let [o, ci, kh, kw] = c.conv.weight.dims();
            let pad = match c.conv.padding {
                PaddingConfig2d::Explicit(t, l, b, r) if t == l && l == b && b == r => t,
                PaddingConfig2d::Valid => 0,
                ref p => bail!("binary conv with padding {p:?}: only symmetric padding is packed"),
            };
            if c.conv.stride[0] != c.conv.stride[1] || c.conv.dilation != [1, 1] {
                bail!("binary conv with unequal strides or dilation: not packed");
            }
            BitGeom {
                c: ci,
                o,
                kh,
                kw,
                stride: c.conv.stride[0],
                pad,
            }
        }
        BinaryLayer::Linear(l) => {
            let [inp, out] = l.fc.weight.dims();
            BitGeom {
                c: inp,
                o: out,
                kh: 1,
                kw: 1,
                stride: 1,
                pad: 0,
            }
        }
    })
}

/// The +-1 weights the model computes with, `[O, C, kh, kw]` flattened.
fn signs<B: Backend>(layer: &BinaryLayer<'_, B>) -> Result<Vec<f32>> {
    let t = match layer {
        BinaryLayer::Conv(c) => c.binary_weight().flatten::<1>(0, 3),
        BinaryLayer::Linear(l) => {
            let rows = l.weight_rows();
            crate::nets::binary::recu::binary_weights(rows, l.clamp.then_some(l.tau))
                .flatten::<1>(0, 1)
        }
    };
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| anyhow::anyhow!("cannot read binary weights back from the device: {e:?}"))
}

/// The packed binary layers of `net`, by name.
pub fn pack<B: Backend>(net: &Backbone<B>) -> Result<Vec<(String, PackedWeights)>> {
    net.binary_layers()
        .into_iter()
        .map(|(name, layer)| {
            let g = geom(&layer).with_context(|| name.clone())?;
            let s = signs(&layer)?;
            Ok((name, PackedWeights::from_signs(&s, g)))
        })
        .collect()
}

/// The parameter path of a binary layer's latent weight in the model.
fn latent_path<B: Backend>(name: &str, layer: &BinaryLayer<'_, B>) -> String {
    match layer {
        BinaryLayer::Conv(_) => format!("net.{name}.conv.weight"),
        BinaryLayer::Linear(_) => format!("net.{name}.fc.weight"),
    }
}

/// Sizes of the binary layers' weights, float and packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinarySizes {
    /// Bytes of the latent weights as float32.
    pub f32_bytes: usize,
    /// Bytes of the packed signs (rows padded to whole words).
    pub packed_bytes: usize,
    /// Bits of signs (no padding).
    pub bits: usize,
}

/// Sizes of the packed `layers`.
pub fn sizes(layers: &[(String, PackedWeights)]) -> BinarySizes {
    let bits: usize = layers.iter().map(|(_, p)| p.geom.o * p.geom.k()).sum();
    BinarySizes {
        f32_bytes: 4 * bits,
        packed_bytes: layers.iter().map(|(_, p)| p.bytes()).sum(),
        bits,
    }
}

/// Write `model` as `packed.safetensors` to `path` (atomically).
pub fn write<B: Backend>(model: &Model<B>, path: &Path) -> Result<()> {
    let layers = model.net.binary_layers();
    if layers.is_empty() {
        bail!("{}: the model has no binary layer to pack", path.display());
    }
    let skip: Vec<String> = layers.iter().map(|(n, l)| latent_path(n, l)).collect();
    let packed = pack(&model.net)?;
    let mut entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        crate::train::collect_f32(model, path)?
            .into_iter()
            .filter(|(n, _, _)| !skip.contains(n))
            .map(|(n, s, b)| (n, Dtype::F32, s, b))
            .collect();
    let mut meta: HashMap<String, BitGeom> = HashMap::new();
    for (name, p) in &packed {
        let bytes = p.rows.iter().flat_map(|w| w.to_le_bytes()).collect();
        entries.push((
            format!("net.{name}.bits"),
            Dtype::U64,
            vec![p.geom.o, p.geom.words()],
            bytes,
        ));
        meta.insert(name.clone(), p.geom);
    }
    let metadata = HashMap::from([(
        "binary_layers".to_string(),
        serde_json::to_string(&meta).context("binary layer metadata")?,
    )]);
    crate::train::write_safetensors(path, &entries, Some(metadata))
}

/// Read the packed binary layers of `path` (a `packed.safetensors`).
pub fn read(path: &Path) -> Result<HashMap<String, PackedWeights>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("binary_layers"))
        .with_context(|| format!("{}: no binary_layers metadata", path.display()))?;
    let meta: HashMap<String, BitGeom> = serde_json::from_str(meta)
        .with_context(|| format!("{}: binary_layers metadata", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let mut out = HashMap::new();
    for (name, g) in meta {
        let key = format!("net.{name}.bits");
        let t = st
            .tensor(&key)
            .with_context(|| format!("{}: no tensor {key}", path.display()))?;
        if t.dtype() != Dtype::U64 || t.shape() != [g.o, g.words()] {
            bail!(
                "{}: {key} is {:?} {:?}, expected U64 [{}, {}]",
                path.display(),
                t.dtype(),
                t.shape(),
                g.o,
                g.words()
            );
        }
        let rows = t
            .data()
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect();
        out.insert(name, PackedWeights::from_rows(rows, g));
    }
    Ok(out)
}

/// The float model of the same architecture: every binary layer as a
/// float layer on its latent weights and real-valued input (no sign), with
/// its alpha: the speed yardstick of the packed model (same shapes, same
/// float layers around them).
pub struct FloatLayers;

impl<B: Backend> WeightTransform<B> for FloatLayers {
    fn is_identity(&self) -> bool {
        true
    }

    fn binary_conv(&self, _: &LayerRef<'_>, conv: &BinaryConv<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv.scale(crate::kernels::conv::forward(&conv.conv, x))
    }

    fn binary_linear(
        &self,
        _: &LayerRef<'_>,
        fc: &BinaryLinear<B>,
        x: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        fc.scale(fc.fc.forward(x))
    }
}

/// Runs a binary backbone's binary layers with the bit-packed kernel.
pub struct PackedTransform {
    layers: HashMap<String, PackedWeights>,
}

impl PackedTransform {
    /// The transform of packed `layers` (by layer name).
    pub fn new(layers: HashMap<String, PackedWeights>) -> Self {
        Self { layers }
    }

    /// Check that the layers fit `net` (names and shapes).
    pub fn check<B: Backend>(&self, net: &Backbone<B>) -> Result<()> {
        let layers = net.binary_layers();
        if layers.len() != self.layers.len() {
            bail!(
                "the packed model has {} binary layers, the run's model {}",
                self.layers.len(),
                layers.len()
            );
        }
        for (name, l) in &layers {
            let want = geom(l)?;
            match self.layers.get(name) {
                Some(p) if p.geom == want => {}
                Some(p) => bail!(
                    "binary layer {name}: packed shape {:?}, the model's {want:?}",
                    p.geom
                ),
                None => bail!("binary layer {name} is not in the packed model"),
            }
        }
        Ok(())
    }

    fn run<B: Backend, const D: usize>(
        &self,
        name: &str,
        x: Tensor<B, D>,
        shape: [usize; 4],
    ) -> Option<Tensor<B, 4>> {
        let p = self.layers.get(name)?;
        let device = x.device();
        let v: Vec<f32> = x.into_data().convert::<f32>().into_vec().ok()?;
        let (ho, wo) = p.geom.out(shape[2], shape[3]);
        let y = bitconv::conv(p, &v, shape);
        Some(Tensor::from_data(
            burn::tensor::TensorData::new(y, [shape[0], p.geom.o, ho, wo]),
            &device,
        ))
    }
}

impl<B: Backend> WeightTransform<B> for PackedTransform {
    fn is_identity(&self) -> bool {
        true
    }

    fn binary_conv(
        &self,
        layer: &LayerRef<'_>,
        conv: &BinaryConv<B>,
        x: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let shape = x.dims();
        match self.run(layer.name, x.clone(), shape) {
            Some(y) => conv.scale(y),
            // Not packed (check() rules it out): the simulation.
            None => conv.simulate(x),
        }
    }

    fn binary_linear(
        &self,
        layer: &LayerRef<'_>,
        fc: &BinaryLinear<B>,
        x: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let [n, k] = x.dims();
        match self.run(layer.name, x.clone(), [n, k, 1, 1]) {
            Some(y) => fc.scale(y.reshape([n, fc.alpha.dims()[0]])),
            None => fc.simulate(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use crate::nets::{Binarize, FeatureAct, Identity, NetKind, NetSpec};
    use burn::tensor::Distribution;

    /// Random binary models of every backbone (odd sizes, the ResNet's
    /// stride-2 stages, padding, evaluation mode): the packed
    /// model's logits equal the simulation's bit for bit, before and after
    /// a round trip through `packed.safetensors`.
    #[test]
    fn packed_models_compute_the_simulated_logits_exactly() {
        let dev = Default::default();
        let dir = tempfile::tempdir().unwrap();
        for (kind, ch, h, w) in [
            (NetKind::Mlp, 1, 7, 9),
            (NetKind::Cnn, 1, 12, 8),
            (NetKind::Resnet20, 3, 8, 12),
        ] {
            for binary in [Binarize::Sign, Binarize::Recu] {
                let spec = NetSpec {
                    kind,
                    channels: ch,
                    height: h,
                    width: w,
                    lenet_dim: 2,
                    feature_act: FeatureAct::Relu,
                    kept: None,
                    binary,
                };
                let net = spec.init::<Cpu>(&dev);
                let x =
                    Tensor::<Cpu, 4>::random([5, ch, h, w], Distribution::Normal(0.0, 1.0), &dev);
                let want = net.forward_with(x.clone(), &Identity);
                let layers: HashMap<String, PackedWeights> =
                    pack(&net).unwrap().into_iter().collect();
                let t = PackedTransform::new(layers);
                t.check(&net).unwrap();
                let got = net.forward_with(x.clone(), &t);
                let (a, b) = (
                    crate::kernels::test_util::vals(want),
                    crate::kernels::test_util::vals(got),
                );
                assert_eq!(a, b, "{kind:?} {binary:?}");
                // The export round trip (a model around the backbone).
                let cfg = crate::train::TrainConfig {
                    net: match kind {
                        NetKind::Mlp => "mlp",
                        NetKind::Cnn => "cnn",
                        _ => "resnet20",
                    }
                    .into(),
                    binary: binary.name().into(),
                    ..Default::default()
                }
                .check()
                .unwrap();
                let model = crate::train::model::build::<Cpu>(&cfg, &spec, 10, &dev).unwrap();
                let path = dir.path().join("packed.safetensors");
                write(&model, &path).unwrap();
                let t = PackedTransform::new(read(&path).unwrap());
                t.check(&model.net).unwrap();
                let (_, l1) = model.forward_with(x.clone(), &Identity);
                let (_, l2) = model.forward_with(x, &t);
                assert_eq!(
                    crate::kernels::test_util::vals(l1),
                    crate::kernels::test_util::vals(l2)
                );
                // No latent binary weight in the file; bits instead.
                let bytes = std::fs::read(&path).unwrap();
                let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
                for (name, _) in model.net.binary_layers() {
                    assert!(st.tensor(&format!("net.{name}.bits")).is_ok());
                    assert!(st.tensor(&format!("net.{name}.conv.weight")).is_err());
                    assert!(st.tensor(&format!("net.{name}.fc.weight")).is_err());
                }
                assert!(
                    st.tensor("head.weight").is_ok()
                        || st.names().iter().any(|n| n.starts_with("head."))
                );
            }
        }
    }
}
