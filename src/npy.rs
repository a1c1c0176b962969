//! Reading NPY files from any source (PyTorch/numpy exports), streaming.
//!
//! Accepted: float32/float64 matrices (2-D, C order) read in row chunks, so
//! memory does not grow with the number of rows; integer label vectors;
//! float vectors. Every error names the file and what was expected: wrong
//! dtype, wrong rank, Fortran order, truncated data, NaN/Inf (with row and
//! column), negative labels.

use anyhow::{Context, Result, bail};
use npyz::{DType, NpyFile, Order, TypeChar};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

type Reader = BufReader<File>;

fn open(path: &Path) -> Result<NpyFile<Reader>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    NpyFile::new(BufReader::with_capacity(1 << 20, f))
        .with_context(|| format!("{}: not a valid NPY file", path.display()))
}

fn scalar_type(path: &Path, npy: &NpyFile<Reader>) -> Result<(TypeChar, u64)> {
    match npy.dtype() {
        DType::Plain(t) => Ok((t.type_char(), t.size_field())),
        other => bail!(
            "{}: dtype {} is not a plain number type",
            path.display(),
            other.descr()
        ),
    }
}

fn check_c_order(path: &Path, npy: &NpyFile<Reader>) -> Result<()> {
    if npy.order() == Order::Fortran && npy.shape().len() > 1 {
        bail!(
            "{}: Fortran-ordered array; save it in C order (numpy.ascontiguousarray)",
            path.display()
        );
    }
    Ok(())
}

enum FloatIter {
    F32(npyz::NpyReader<f32, Reader>),
    F64(npyz::NpyReader<f64, Reader>),
}

/// A float matrix read in chunks of rows.
pub struct MatrixReader {
    path: PathBuf,
    rows: usize,
    cols: usize,
    next_row: usize,
    data: FloatIter,
}

impl MatrixReader {
    /// Open `path`: a 2-D float32/float64 C-order array (`what` names it in errors).
    pub fn open(path: &Path, what: &str) -> Result<Self> {
        let npy = open(path)?;
        let shape = npy.shape().to_vec();
        if shape.len() != 2 {
            bail!(
                "{} ({what}): expected a 2-D array (rows x columns), got shape {shape:?}",
                path.display()
            );
        }
        check_c_order(path, &npy)?;
        let (tc, size) = scalar_type(path, &npy)?;
        let data = match (tc, size) {
            (TypeChar::Float, 4) => FloatIter::F32(
                npy.data::<f32>()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            ),
            (TypeChar::Float, 8) => FloatIter::F64(
                npy.data::<f64>()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            ),
            _ => bail!(
                "{} ({what}): dtype must be float32 or float64",
                path.display()
            ),
        };
        let rows = usize::try_from(shape[0]).context("too many rows")?;
        let cols = usize::try_from(shape[1]).context("too many columns")?;
        Ok(Self {
            path: path.to_path_buf(),
            rows,
            cols,
            next_row: 0,
            data,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Read up to `max_rows` rows into `out` (cleared first) as f64; returns
    /// the number of rows read (0 at the end). NaN/Inf are errors.
    pub fn next_chunk(&mut self, max_rows: usize, out: &mut Vec<f64>) -> Result<usize> {
        out.clear();
        let n = max_rows.min(self.rows - self.next_row);
        let want = n * self.cols;
        out.reserve(want);
        let truncated = |k: usize, e: std::io::Error| {
            anyhow::anyhow!(
                "{}: truncated or unreadable data at value {} of {} ({e})",
                self.path.display(),
                self.next_row * self.cols + k,
                self.rows * self.cols
            )
        };
        match &mut self.data {
            FloatIter::F32(it) => {
                for k in 0..want {
                    match it.next() {
                        Some(Ok(v)) => out.push(v as f64),
                        Some(Err(e)) => return Err(truncated(k, e)),
                        None => return Err(truncated(k, std::io::ErrorKind::UnexpectedEof.into())),
                    }
                }
            }
            FloatIter::F64(it) => {
                for k in 0..want {
                    match it.next() {
                        Some(Ok(v)) => out.push(v),
                        Some(Err(e)) => return Err(truncated(k, e)),
                        None => return Err(truncated(k, std::io::ErrorKind::UnexpectedEof.into())),
                    }
                }
            }
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: non-finite value {} at row {}, column {}",
                self.path.display(),
                out[i],
                self.next_row + i / self.cols.max(1),
                i % self.cols.max(1)
            );
        }
        self.next_row += n;
        Ok(n)
    }

    /// Read everything: `(values, rows, cols)`.
    pub fn read_all(mut self) -> Result<(Vec<f64>, usize, usize)> {
        let (rows, cols) = (self.rows, self.cols);
        let mut out = Vec::new();
        self.next_chunk(rows, &mut out)?;
        Ok((out, rows, cols))
    }
}

/// Read a float vector: 1-D, or 2-D with one row or one column.
pub fn read_vector(path: &Path, what: &str) -> Result<Vec<f64>> {
    let npy = open(path)?;
    let shape = npy.shape().to_vec();
    let ok = shape.len() == 1 || (shape.len() == 2 && (shape[0] == 1 || shape[1] == 1));
    if !ok {
        bail!(
            "{} ({what}): expected a vector, got shape {shape:?}",
            path.display()
        );
    }
    let (tc, size) = scalar_type(path, &npy)?;
    let v: Vec<f64> = match (tc, size) {
        (TypeChar::Float, 4) => npy
            .into_vec::<f32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        (TypeChar::Float, 8) => npy.into_vec::<f64>(),
        _ => bail!(
            "{} ({what}): dtype must be float32 or float64",
            path.display()
        ),
    }
    .with_context(|| format!("{}: truncated or unreadable data", path.display()))?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        bail!("{}: non-finite value {} at index {i}", path.display(), v[i]);
    }
    Ok(v)
}

/// Read class labels: a 1-D integer array (int8..int64, uint8..uint64).
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let npy = open(path)?;
    let shape = npy.shape().to_vec();
    if shape.len() != 1 {
        bail!(
            "{} (labels): expected a 1-D array, got shape {shape:?}",
            path.display()
        );
    }
    let (tc, size) = scalar_type(path, &npy)?;
    let ctx = || format!("{}: truncated or unreadable data", path.display());
    let signed: Vec<i64> = match (tc, size) {
        (TypeChar::Int, 1) => npy
            .into_vec::<i8>()
            .with_context(ctx)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Int, 2) => npy
            .into_vec::<i16>()
            .with_context(ctx)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Int, 4) => npy
            .into_vec::<i32>()
            .with_context(ctx)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Int, 8) => npy.into_vec::<i64>().with_context(ctx)?,
        (TypeChar::Uint, 1) => npy
            .into_vec::<u8>()
            .with_context(ctx)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Uint, 2) => npy
            .into_vec::<u16>()
            .with_context(ctx)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Uint, 4) => npy
            .into_vec::<u32>()
            .with_context(ctx)?
            .into_iter()
            .map(i64::from)
            .collect(),
        (TypeChar::Uint, 8) => npy
            .into_vec::<u64>()
            .with_context(ctx)?
            .into_iter()
            .map(|v| i64::try_from(v).unwrap_or(-1))
            .collect(),
        _ => bail!(
            "{} (labels): dtype must be an integer type (int32 or int64)",
            path.display()
        ),
    };
    signed
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            usize::try_from(v).map_err(|_| {
                anyhow::anyhow!("{}: label {v} at index {i} is negative", path.display())
            })
        })
        .collect()
}
