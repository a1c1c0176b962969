//! `symfeat._native`: the Rust side of the Python package. Thin: numpy
//! arrays are checked and read in place (float32/float64, C-contiguous),
//! the computation is the symfeat library's own call (the one behind the
//! CLI), run with the GIL released; errors come back as `TypeError` (a
//! dtype or an object that is not an array) or `ValueError` (everything
//! else) with the CLI's words, the file's name replaced by the argument's;
//! a panic comes back as `RuntimeError`, never as an abort.
//!
//! The Python API (`python/symfeat/__init__.py`) wraps these functions:
//! it turns inputs into numpy arrays and the JSON results into dicts.

use numpy::{
    Element, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::panic::AssertUnwindSafe;
use symfeat::analyze::{AnalyzeArrays, Names, Rows, analyze_memory};
use symfeat::geometry::Precision;
use symfeat::geometry::polygon::scale_for_p_max;
use symfeat::heads::evaluate::{EvalInputs, EvalNames, evaluate};
use symfeat::heads::{HeadKind, HeadSpec};
use symfeat::run_dir::external::ExternalRun;
use symfeat::run_dir::{EpochMetrics, ProbeAnalysis, ProbeLine};
use symfeat::train::{TrainConfig, parse_head_params};

/// Runs `f` with the GIL released; its error is a `ValueError` with the
/// CLI's message, a panic a `RuntimeError` (the interpreter lives on).
fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> anyhow::Result<T> + Send) -> PyResult<T> {
    let out = py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(f)));
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(PyValueError::new_err(format!("{e:#}"))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(PyRuntimeError::new_err(format!(
                "internal error in symfeat (a bug; please report it): {msg}"
            )))
        }
    }
}

fn value_error(e: anyhow::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}"))
}

/// A float array borrowed from numpy, read in place.
enum Floats<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

impl Floats<'_> {
    fn rows(&self) -> Rows<'_> {
        // C-contiguity was checked when the array was taken.
        match self {
            Floats::F32(a) => Rows::F32(a.as_slice().unwrap_or(&[])),
            Floats::F64(a) => Rows::F64(a.as_slice().unwrap_or(&[])),
        }
    }

    /// float32 values (a copy only for float64 input).
    fn to_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        match self.rows() {
            Rows::F32(v) => v.into(),
            Rows::F64(v) => v.iter().map(|&x| x as f32).collect::<Vec<_>>().into(),
        }
    }
}

fn untyped<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    name: &str,
) -> PyResult<&'a Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>().map_err(|_| {
        let ty = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!("{name}: expected a numpy array, got {ty}"))
    })
}

fn is<T: Element>(a: &Bound<'_, PyUntypedArray>) -> bool {
    a.dtype().is_equiv_to(&numpy::dtype::<T>(a.py()))
}

/// Read in place needs C order and aligned elements (the Python API makes
/// such a copy of any other array first).
fn c_order(a: &Bound<'_, PyUntypedArray>, name: &str) -> PyResult<()> {
    if !a.is_c_contiguous() || !a.is_aligned() {
        return Err(PyValueError::new_err(format!(
            "{name}: the array is not C-contiguous (row-major) and aligned; use \
             numpy.require(a, requirements=\"CA\")"
        )));
    }
    Ok(())
}

/// A float32/float64 array of `ndim` dimensions (a vector: 1-D, or 2-D
/// with one row or one column, as the CLI's vector files).
fn floats<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    what: Shape,
) -> PyResult<(Floats<'py>, (usize, usize))> {
    let a = untyped(obj, name)?;
    let shape = a.shape().to_vec();
    let dims = match what {
        Shape::Matrix if shape.len() == 2 => (shape[0], shape[1]),
        Shape::Matrix => {
            return Err(PyValueError::new_err(format!(
                "{name}: expected a 2-D array (rows x columns), got shape {shape:?}"
            )));
        }
        Shape::Vector if shape.len() == 1 => (shape[0], 1),
        Shape::Vector if shape.len() == 2 && (shape[0] == 1 || shape[1] == 1) => {
            (shape[0] * shape[1], 1)
        }
        Shape::Vector => {
            return Err(PyValueError::new_err(format!(
                "{name}: expected a vector, got shape {shape:?}"
            )));
        }
    };
    c_order(a, name)?;
    let arr = if is::<f32>(a) {
        Floats::F32(obj.extract()?)
    } else if is::<f64>(a) {
        Floats::F64(obj.extract()?)
    } else {
        return Err(PyTypeError::new_err(format!(
            "{name}: dtype must be float32 or float64"
        )));
    };
    Ok((arr, dims))
}

#[derive(Clone, Copy)]
enum Shape {
    Matrix,
    Vector,
}

fn label_values<T: Element + Copy + TryInto<i64> + std::fmt::Display>(
    obj: &Bound<'_, PyAny>,
    name: &str,
) -> PyResult<Vec<usize>> {
    let a: PyReadonlyArrayDyn<'_, T> = obj.extract()?;
    let v = a
        .as_slice()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
    symfeat::npy::class_indices(name, v).map_err(value_error)
}

/// Class labels: a 1-D integer array of any width.
fn labels(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<usize>> {
    let a = untyped(obj, name)?;
    if a.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "{name}: expected a 1-D array, got shape {:?}",
            a.shape()
        )));
    }
    c_order(a, name)?;
    macro_rules! try_types {
        ($($t:ty),*) => {
            $(if is::<$t>(a) { return label_values::<$t>(obj, name); })*
        };
    }
    try_types!(i64, i32, i16, i8, u64, u32, u16, u8);
    Err(PyTypeError::new_err(format!(
        "{name}: dtype must be an integer type (int32 or int64)"
    )))
}

fn precision(p: &str) -> PyResult<Precision> {
    match p {
        "mixed" => Ok(Precision::Mixed),
        "f64" => Ok(Precision::F64),
        _ => Err(PyValueError::new_err(format!(
            "precision {p:?}: expected \"mixed\" or \"f64\""
        ))),
    }
}

fn names() -> Names {
    Names {
        features: "features".into(),
        labels: "labels".into(),
        weights: "weights".into(),
        bias: "bias".into(),
        options: ["scale".into(), "bias".into()],
    }
}

/// The arrays of an analysis, as Python gave them.
struct Arrays<'a, 'py> {
    features: &'a Bound<'py, PyAny>,
    labels: &'a Bound<'py, PyAny>,
    weights: &'a Bound<'py, PyAny>,
    bias: Option<&'a Bound<'py, PyAny>>,
}

/// An analysis, its `--json` text, and the weights it measured (float32, C x D).
struct Measured {
    analysis: symfeat::geometry::Analysis,
    json: String,
    weights: Vec<f32>,
    shape: (usize, usize),
}

/// The geometry report of `symfeat analyze`.
fn measure(
    py: Python<'_>,
    arrays: Arrays<'_, '_>,
    scale: Option<f64>,
    precision: Precision,
) -> PyResult<Measured> {
    let (x, xs) = floats(arrays.features, "features", Shape::Matrix)?;
    let y = labels(arrays.labels, "labels")?;
    let (w, ws) = floats(arrays.weights, "weights", Shape::Matrix)?;
    let b = arrays
        .bias
        .map(|b| floats(b, "bias", Shape::Vector))
        .transpose()?;
    let inp = AnalyzeArrays {
        features: x.rows(),
        features_shape: xs,
        labels: &y,
        weights: w.rows(),
        weights_shape: ws,
        bias: b.as_ref().map(|(b, _)| b.rows()),
        scale,
        precision,
        names: names(),
    };
    let analysis = run(py, || analyze_memory(&inp))?;
    let json = serde_json::to_string(&analysis)
        .map_err(|e| PyRuntimeError::new_err(format!("internal error in symfeat: {e}")))?;
    Ok(Measured {
        analysis,
        json,
        weights: w.to_f32().into_owned(),
        shape: ws,
    })
}

/// analyze(features, labels, weights, bias, scale, precision) -> JSON text
/// of `symfeat analyze --json`.
#[pyfunction]
#[pyo3(signature = (features, labels, weights, bias=None, scale=None, precision="mixed"))]
fn analyze(
    py: Python<'_>,
    features: &Bound<'_, PyAny>,
    labels: &Bound<'_, PyAny>,
    weights: &Bound<'_, PyAny>,
    bias: Option<&Bound<'_, PyAny>>,
    scale: Option<f64>,
    precision: &str,
) -> PyResult<String> {
    let p = self::precision(precision)?;
    let arrays = Arrays {
        features,
        labels,
        weights,
        bias,
    };
    Ok(measure(py, arrays, scale, p)?.json)
}

/// Python's spelling of an option: `classes=C`, `bias=...`.
fn python_option(name: &str, value: &str) -> String {
    match value {
        "" => name.to_string(),
        v if v == name => name.to_string(),
        v if v.ends_with(".npy") => format!("{name}=<array>"),
        v => format!("{name}={v}"),
    }
}

fn head_spec(head: &str, params: &[String], option: &str) -> PyResult<HeadSpec> {
    let Some(kind) = HeadKind::parse(head) else {
        return Err(PyValueError::new_err(format!(
            "head {head:?}: expected one of {}",
            HeadKind::names()
        )));
    };
    let params = parse_head_params(params, option).map_err(value_error)?;
    Ok(HeadSpec { kind, params })
}

/// head_logits(head, features, labels, weights, bias, classes, step, params)
/// -> (logits N x C float32, loss): `symfeat heads eval`.
#[pyfunction]
#[pyo3(signature = (head, features, labels, weights, bias=None, classes=None, step=0, params=vec![]))]
#[allow(clippy::too_many_arguments)]
fn head_logits<'py>(
    py: Python<'py>,
    head: &str,
    features: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
    classes: Option<i64>,
    step: i64,
    params: Vec<String>,
) -> PyResult<(Bound<'py, numpy::PyArray2<f32>>, f32)> {
    let spec = head_spec(head, &params, "head parameter")?;
    let classes = classes
        .map(|c| {
            usize::try_from(c).map_err(|_| {
                PyValueError::new_err(format!("classes={c}: expected at least 2 classes"))
            })
        })
        .transpose()?;
    let step = usize::try_from(step)
        .map_err(|_| PyValueError::new_err(format!("step={step}: expected a number >= 0")))?;
    let (x, xs) = floats(features, "features", Shape::Matrix)?;
    let y = self::labels(labels, "labels")?;
    let (w, ws) = floats(weights, "weights", Shape::Matrix)?;
    let b = bias.map(|b| floats(b, "bias", Shape::Vector)).transpose()?;
    let (x32, w32) = (x.to_f32(), w.to_f32());
    let b32 = b.as_ref().map(|(b, _)| b.to_f32());
    let inp = EvalInputs {
        spec,
        head_name: head,
        features: &x32,
        features_shape: xs,
        labels: &y,
        weights: &w32,
        weights_shape: ws,
        bias: b32.as_deref(),
        classes,
        step,
        names: EvalNames {
            features: "features".into(),
            labels: "labels".into(),
            weights: "weights".into(),
            bias: "bias".into(),
            option: python_option,
        },
    };
    let out = run(py, || {
        evaluate::<symfeat::backend::Cpu>(&inp, &Default::default())
    })?;
    let logits = numpy::PyArray1::from_vec(py, out.logits).reshape([xs.0, out.classes])?;
    Ok((logits, out.loss))
}

/// heads() -> JSON text: every head with its formula and parameters
/// (`symfeat heads list`).
#[pyfunction]
fn heads() -> String {
    let list: Vec<serde_json::Value> = HeadKind::ALL
        .iter()
        .map(|k| {
            let params: Vec<serde_json::Value> = k
                .params()
                .iter()
                .map(|p| serde_json::json!({"name": p.name, "default": p.default, "doc": p.doc}))
                .collect();
            serde_json::json!({
                "name": k.name(),
                "formula": k.formula(),
                "cosine": k.desc().cosine,
                "params": params,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// report(dir) -> JSON text of summary.json; writes the report files.
#[pyfunction]
fn report(py: Python<'_>, dir: std::path::PathBuf) -> PyResult<String> {
    run(py, || {
        let s = symfeat::report::build::build_report(&dir)?;
        Ok(serde_json::to_string(&s)?)
    })
}

/// A run trained in PyTorch (or anywhere), written as a symfeat run
/// directory: see `symfeat.Probe`.
#[pyclass(module = "symfeat._native")]
struct Probe {
    run: Option<ExternalRun>,
    /// The head's s (None: a linear head).
    scale: Option<f64>,
    /// The symmetrical layer's `p_max` (`s="auto"`): s follows from C.
    p_max: Option<f64>,
}

impl Probe {
    fn open_run(&mut self) -> PyResult<&mut ExternalRun> {
        self.run
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("the probe is closed"))
    }
}

/// An epoch number from Python: counted from 1.
fn epoch_number(epoch: i64) -> PyResult<usize> {
    usize::try_from(epoch)
        .ok()
        .filter(|&e| e >= 1)
        .ok_or_else(|| PyValueError::new_err(format!("epoch = {epoch}: epochs are counted from 1")))
}

/// The run's configuration: symfeat's defaults, the head, then the user's
/// fields (a JSON object of `TrainConfig` fields: errors name the field).
fn probe_config(spec: &HeadSpec, config_json: &str) -> anyhow::Result<TrainConfig> {
    let base = TrainConfig {
        dataset: "custom".into(),
        net: "pytorch".into(),
        head: spec.kind.name().into(),
        head_params: spec.params.clone(),
        out: Default::default(),
        ..TrainConfig::default()
    };
    let mut table = toml::Table::try_from(&base)?;
    let given: serde_json::Map<String, serde_json::Value> = serde_json::from_str(config_json)?;
    for (k, v) in given {
        if ["head", "head_params"].contains(&k.as_str()) {
            anyhow::bail!("config: {k} is given by the probe's head and its parameters");
        }
        let v = toml::Value::try_from(&v).map_err(|e| anyhow::anyhow!("config: {k} = {v}: {e}"))?;
        table.insert(k, v);
    }
    use serde::Deserialize;
    TrainConfig::deserialize(table).map_err(|e| anyhow::anyhow!("config: {e}"))
}

#[pymethods]
impl Probe {
    #[new]
    #[pyo3(signature = (dir, head, params, config_json, exist_ok))]
    fn new(
        dir: std::path::PathBuf,
        head: &str,
        params: Vec<String>,
        config_json: &str,
        exist_ok: bool,
    ) -> PyResult<Self> {
        let spec = head_spec(head, &params, "head parameter")?;
        let p = spec
            .resolve()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let cosine = spec.kind.desc().cosine;
        let scale = cosine.then(|| p.values().get("s").copied()).flatten();
        let p_max = p.values().get("p_max").copied().filter(|&v| v > 0.0);
        let config = probe_config(&spec, config_json).map_err(value_error)?;
        let run = ExternalRun::open(&dir, config, exist_ok).map_err(value_error)?;
        Ok(Self {
            run: Some(run),
            scale,
            p_max,
        })
    }

    /// The scale s the probe's analyses use (None: a linear head).
    #[getter]
    fn scale(&self) -> Option<f64> {
        self.scale
    }

    /// Analyse one split after one epoch and add it to probe.jsonl; returns
    /// the analysis as JSON text.
    #[pyo3(signature = (epoch, split, features, labels, weights, bias=None, scale=None))]
    #[allow(clippy::too_many_arguments)]
    fn log(
        &mut self,
        py: Python<'_>,
        epoch: i64,
        split: &str,
        features: &Bound<'_, PyAny>,
        labels: &Bound<'_, PyAny>,
        weights: &Bound<'_, PyAny>,
        bias: Option<&Bound<'_, PyAny>>,
        scale: Option<f64>,
    ) -> PyResult<String> {
        if !["test", "train"].contains(&split) {
            return Err(PyValueError::new_err(format!(
                "split {split:?}: expected \"test\" or \"train\""
            )));
        }
        self.open_run()?;
        let epoch = epoch_number(epoch)?;
        let scale = match (scale, self.scale) {
            (Some(_), None) => {
                return Err(PyValueError::new_err(
                    "scale: the probe's head is linear (no scale); give bias instead",
                ));
            }
            (Some(s), Some(_)) => Some(s),
            // s="auto": the symmetrical layer's s for this C (rows of the weights).
            (None, Some(s)) => match self.p_max {
                Some(p) => {
                    let c = untyped(weights, "weights")?
                        .shape()
                        .first()
                        .copied()
                        .unwrap_or(0);
                    Some(scale_for_p_max(c, p).map_err(|e| value_error(e.into()))?)
                }
                None => Some(s),
            },
            (None, None) => None,
        };
        let arrays = Arrays {
            features,
            labels,
            weights,
            bias,
        };
        let m = measure(py, arrays, scale, Precision::Mixed)?;
        let line = ProbeLine {
            epoch,
            split: split.into(),
            analysis: ProbeAnalysis::Measured(Box::new(m.analysis)),
        };
        let (c, d) = m.shape;
        let run = self.open_run()?;
        run.log_probe(line, (&m.weights, c, d))
            .map_err(value_error)?;
        Ok(m.json)
    }

    /// Add one epoch's metrics to metrics.jsonl.
    #[pyo3(signature = (epoch, train_loss, train_acc, test_loss, test_acc, lr, seconds=0.0, images_per_s=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn log_epoch(
        &mut self,
        epoch: i64,
        train_loss: f64,
        train_acc: f64,
        test_loss: f64,
        test_acc: f64,
        lr: f64,
        seconds: f64,
        images_per_s: f64,
    ) -> PyResult<()> {
        let epoch = epoch_number(epoch)?;
        let m = EpochMetrics {
            epoch,
            lr,
            train_loss,
            train_acc,
            test_loss,
            test_acc,
            seconds,
            images_per_s,
            ..Default::default()
        };
        self.open_run()?.log_epoch(m).map_err(value_error)
    }

    /// The run directory.
    #[getter]
    fn dir(&self) -> Option<std::path::PathBuf> {
        // pathlib.Path on the Python side.
        self.run.as_ref().map(|r| r.dir().to_path_buf())
    }

    /// Release the directory's lock (every line is already on disk).
    fn close(&mut self) {
        self.run = None;
    }
}

/// A panic inside the guarded computation, for the test that a panic comes
/// back as `RuntimeError` and the interpreter goes on (python/tests).
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    run(py, || -> anyhow::Result<()> {
        panic!("a panic for the tests")
    })
}

/// The Rust half of the `symfeat` Python package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(head_logits, m)?)?;
    m.add_function(wrap_pyfunction!(heads, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_class::<Probe>()?;
    Ok(())
}
