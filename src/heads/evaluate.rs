//! A head evaluated on given features, labels and weights (`symfeat heads
//! eval`, `symfeat.head_logits` in Python): how a user checks their own
//! head implementation against symfeat's formulas.

use super::{HeadKind, HeadOps, HeadSpec, cross_entropy};
use anyhow::{Context, Result, bail};
use burn::prelude::*;

/// What the errors call each input and option: the CLI names files and
/// `--options`, the Python package its arguments, so both say the same words.
#[derive(Debug, Clone)]
pub struct EvalNames {
    /// The features.
    pub features: String,
    /// The labels.
    pub labels: String,
    /// The weights.
    pub weights: String,
    /// The bias (the CLI: `PATH (--bias)`).
    pub bias: String,
    /// An option with a value as the interface spells it (`--classes C`,
    /// `classes=C`; an empty value: the option alone).
    pub option: fn(&str, &str) -> String,
}

/// The CLI's spelling of an option.
pub fn cli_option(name: &str, value: &str) -> String {
    if value.is_empty() {
        format!("--{name}")
    } else {
        format!("--{name} {value}")
    }
}

/// Inputs of [`evaluate`]: row-major float32 arrays.
#[derive(Debug, Clone)]
pub struct EvalInputs<'a> {
    /// The head and its parameters (checked by [`evaluate`]).
    pub spec: HeadSpec,
    /// The head's name as the user gave it (for the errors).
    pub head_name: &'a str,
    /// Features, (N, D).
    pub features: &'a [f32],
    /// (N, D).
    pub features_shape: (usize, usize),
    /// N class indices.
    pub labels: &'a [usize],
    /// C x D class weights, or the symmetrical layer's 2 x D (v1, v2).
    pub weights: &'a [f32],
    /// Rows and columns of the weights.
    pub weights_shape: (usize, usize),
    /// C bias values (softmax, center).
    pub bias: Option<&'a [f32]>,
    /// The number of classes (the symmetrical layer's C).
    pub classes: Option<usize>,
    /// Optimizer step (SphereFace's lambda annealing).
    pub step: usize,
    /// What the errors call the inputs.
    pub names: EvalNames,
}

/// What a head gives on the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOutput {
    /// Training logits (with the margin on the target class), N x C row-major.
    pub logits: Vec<f32>,
    /// C.
    pub classes: usize,
    /// Mean cross-entropy of the logits.
    pub loss: f32,
}

fn tensor<B: Backend>(v: &[f32], shape: [usize; 2], dev: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), dev)
}

/// The number of classes, from the weights' rows (or `classes` for the
/// symmetrical layer, whose weights are its plane).
fn class_count(inp: &EvalInputs, kind: HeadKind) -> Result<usize> {
    let (wr, names) = (inp.weights_shape.0, &inp.names);
    let opt = names.option;
    if kind == HeadKind::Symmetrical {
        if wr != 2 {
            bail!(
                "{}: the symmetrical layer takes its 2 x D parameters (v1, v2), got {wr} rows",
                names.weights
            );
        }
        let c = inp.classes.with_context(|| {
            format!(
                "{} is required for the symmetrical layer",
                opt("classes", "C")
            )
        })?;
        if c < 2 {
            bail!(
                "{}: expected at least 2 classes",
                opt("classes", &c.to_string())
            );
        }
        return Ok(c);
    }
    if wr < 2 {
        bail!(
            "{}: {wr} class weight row(s); expected C x D with C >= 2 classes",
            names.weights
        );
    }
    Ok(wr)
}

/// Build the head of `inp.spec`, load the given weights into it and compute
/// its training logits and cross-entropy (on the backend `B`).
pub fn evaluate<B: Backend>(inp: &EvalInputs, dev: &B::Device) -> Result<EvalOutput> {
    let names = &inp.names;
    let opt = names.option;
    let kind = inp.spec.kind;
    inp.spec.resolve().with_context(|| opt("param", ""))?;
    let (n, d) = inp.features_shape;
    let (wr, wd) = inp.weights_shape;
    if n.checked_mul(d) != Some(inp.features.len()) || wr.checked_mul(wd) != Some(inp.weights.len())
    {
        bail!("the arrays' lengths do not match their shapes");
    }
    if n == 0 || d == 0 {
        bail!(
            "{}: expected at least one row and one column, got {n} x {d}",
            names.features
        );
    }
    crate::npy::check_finite(&names.features, inp.features, 0, d)?;
    crate::npy::check_finite(&names.weights, inp.weights, 0, wd)?;
    if inp.labels.len() != n {
        bail!(
            "{} has {n} rows but {} has {} labels",
            names.features,
            names.labels,
            inp.labels.len()
        );
    }
    if wd != d {
        bail!(
            "{}: weights have D = {wd}, features have D = {d}",
            names.weights
        );
    }
    let c = class_count(inp, kind)?;
    // Allocations past memory abort the process (no error to catch): refuse
    // sizes no head evaluation needs at once.
    const MAX_VALUES: usize = 1 << 32;
    let too_big = |a: usize, b: usize| a.checked_mul(b).is_none_or(|v| v > MAX_VALUES);
    if too_big(n, c) || too_big(c, d) {
        bail!(
            "N x C = {n} x {c} logits or C x D = {c} x {d} class weights: more than 2^32 \
             values; evaluate the features in batches"
        );
    }
    if let Some((i, &l)) = inp.labels.iter().enumerate().find(|&(_, &l)| l >= c) {
        bail!("{}: label {l} at index {i} is outside 0..{c}", names.labels);
    }
    let mut head = inp.spec.init::<B>(d, c, dev).with_context(|| {
        format!(
            "{} with D = {d} (columns of {}) and C = {c}",
            opt("head", inp.head_name),
            names.features
        )
    })?;
    if let Some(b) = inp.bias {
        if b.len() != c {
            bail!(
                "{}: {} values, expected C = {c} (rows of {})",
                names.bias,
                b.len(),
                names.weights
            );
        }
        crate::npy::check_finite_vector(&names.bias, b)?;
    }
    // What the built head has: a bias (softmax, center) or not.
    match (inp.bias, head.bias().is_some()) {
        (None, true) => bail!(
            "{} is required for the {} head",
            opt("bias", "b.npy"),
            inp.head_name
        ),
        (Some(_), false) => bail!(
            "{} applies to the softmax head only, not to {}",
            opt("bias", ""),
            inp.head_name
        ),
        _ => {}
    }
    let bias = inp.bias.map(|b| tensor::<B>(b, [1, c], dev).reshape([c]));
    head.load_weights(tensor(inp.weights, [wr, wd], dev), bias)
        .with_context(|| opt("weights", &names.weights))?;
    let x = tensor(inp.features, [n, d], dev);
    let y: Vec<i64> = inp.labels.iter().map(|&l| l as i64).collect();
    let y = Tensor::<B, 1, Int>::from_data(TensorData::new(y, [n]), dev);
    let logits = head.train_logits(x, y.clone(), inp.step);
    let loss: f32 = cross_entropy(logits.clone(), y).into_scalar().elem();
    let logits = logits
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| anyhow::anyhow!("cannot read the logits back: {e:?}"))?;
    Ok(EvalOutput {
        logits,
        classes: c,
        loss,
    })
}
