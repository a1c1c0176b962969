//! `symfeat analyze` as a library: features, labels and class weights (from
//! NPY files or from memory) -> the geometry report of field notes §4.
//!
//! The features are streamed twice in blocks of rows (statistics, then
//! compactness, NC1 and NC4), so memory does not grow with the number of
//! samples. A little-endian float32 file is mapped and read in place, each
//! block's pages dropped from the process after use (the file must not be
//! truncated or rewritten meanwhile: as with numpy's memmap, that ends the
//! process with SIGBUS); other files are read chunk by chunk by a reader
//! thread. The second pass's products run in [`Precision::Mixed`] by
//! default (see `geometry::analysis::mixed`).

use crate::geometry::{self, Analysis, ClassStats, Matrix, Precision, SecondPass};
use crate::npy::{MappedF32, MatrixReader, read_labels, read_vector};
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Inputs of a file-based analysis.
#[derive(Debug, Clone)]
pub struct AnalyzeFiles {
    /// Features, N x D float32/float64.
    pub features: PathBuf,
    /// Labels, N integers in 0..C.
    pub labels: PathBuf,
    /// Class weights, C x D float32/float64.
    pub weights: PathBuf,
    /// Bias, C floats (linear heads).
    pub bias: Option<PathBuf>,
    /// Scale s of a cosine head (NormFace, symmetrical layer...).
    pub scale: Option<f64>,
    /// Arithmetic of the second pass's products ([`Precision`]).
    pub precision: Precision,
}

const CHUNK_ROWS: usize = 8192;

/// What the errors call each input: a file's path (the CLI) or an
/// argument's name (the Python package), so both say the same words.
#[derive(Debug, Clone)]
pub struct Names {
    /// The features.
    pub features: String,
    /// The labels.
    pub labels: String,
    /// The class weights.
    pub weights: String,
    /// The bias.
    pub bias: String,
    /// The scale and bias options as the interface spells them
    /// (`--scale`, `--bias`; `scale`, `bias`).
    pub options: [String; 2],
}

impl Names {
    fn of_files(inp: &AnalyzeFiles) -> Self {
        let show = |p: &Path| p.display().to_string();
        Self {
            features: show(&inp.features),
            labels: show(&inp.labels),
            weights: show(&inp.weights),
            bias: inp.bias.as_deref().map(show).unwrap_or_default(),
            options: ["--scale".into(), "--bias".into()],
        }
    }
}

fn check_labels(labels: &[usize], classes: usize, name: &str) -> Result<()> {
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= classes) {
        bail!("{name}: label {l} at index {i} is outside 0..{classes} (C from the weights)");
    }
    let mut seen = vec![false; classes];
    labels.iter().for_each(|&l| seen[l] = true);
    if let Some(c) = seen.iter().position(|s| !s) {
        bail!("{name}: class {c} has no sample; every class needs at least one");
    }
    Ok(())
}

/// The weights (C x D) and bias as the analysis takes them, checked.
fn check_head(
    w: Vec<f64>,
    (c, d): (usize, usize),
    bias: Option<Vec<f64>>,
    names: &Names,
) -> Result<(Matrix, Option<Vec<f64>>)> {
    let name = &names.weights;
    if c < 2 {
        bail!("{name}: need at least 2 classes (rows), got {c} x {d}");
    }
    if d < 1 {
        bail!("{name}: expected at least 1 column (D >= 1), got {c} x {d}");
    }
    let weights = Matrix::new(c, d, w).map_err(anyhow::Error::from)?;
    if let Some(r) = weights.row_norms().iter().position(|&n| n == 0.0) {
        bail!("{name}: weight row {r} is zero; angles to it are undefined");
    }
    if let Some(b) = &bias
        && b.len() != c
    {
        bail!(
            "{}: bias has {} values, expected C = {c}",
            names.bias,
            b.len()
        );
    }
    Ok((weights, bias))
}

/// Features (`rows` x `cols`) against the weights' D and the labels.
fn check_features(
    (rows, cols): (usize, usize),
    d: usize,
    labels: &[usize],
    names: &Names,
) -> Result<()> {
    if cols != d {
        bail!(
            "{}: features have D = {cols}, but the weights in {} have D = {d}",
            names.features,
            names.weights
        );
    }
    if rows != labels.len() {
        bail!(
            "{} has {rows} rows but {} has {} labels",
            names.features,
            names.labels,
            labels.len()
        );
    }
    Ok(())
}

fn check_scale(scale: Option<f64>, bias: bool, names: &Names) -> Result<()> {
    let (s_opt, b_opt) = (&names.options[0], &names.options[1]);
    if let Some(s) = scale
        && !(s.is_finite() && s > 0.0)
    {
        bail!("{s_opt} {s}: expected a finite number > 0");
    }
    if scale.is_some() && bias {
        bail!("{s_opt} (cosine head) and {b_opt} (linear head) exclude each other");
    }
    Ok(())
}

/// Streams the features file in chunks of `CHUNK_ROWS` rows: a reader
/// thread reads and decodes the next chunk while `f(rows, first_row, n)`
/// works on the current one (two buffers in flight, so memory stays
/// independent of N). The first error, from either side, is returned.
///
/// `read` fills a buffer with the next chunk: f64 values, or float32 ones
/// kept narrow ([`MatrixReader::next_chunk_f32`]).
fn for_each_chunk<T: Send>(
    path: &Path,
    read: fn(&mut MatrixReader, usize, &mut Vec<T>) -> Result<usize>,
    mut f: impl FnMut(&[T], usize, usize) -> Result<()>,
) -> Result<()> {
    let mut reader = MatrixReader::open(path, "features")?;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Result<(Vec<T>, usize)>>(1);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<T>>();
    for _ in 0..2 {
        let _ = free_tx.send(Vec::new());
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Ok(mut buf) = free_rx.recv() {
                let next = read(&mut reader, CHUNK_ROWS, &mut buf);
                let done = !matches!(next, Ok(n) if n > 0);
                if full_tx.send(next.map(|n| (buf, n))).is_err() || done {
                    return;
                }
            }
        });
        let mut start = 0;
        let result = loop {
            match full_rx.recv() {
                Ok(Ok((_, 0))) | Err(_) => break Ok(()),
                Ok(Ok((buf, n))) => {
                    if let Err(e) = f(&buf, start, n) {
                        break Err(e);
                    }
                    start += n;
                    let _ = free_tx.send(buf);
                }
                Ok(Err(e)) => break Err(e),
            }
        };
        // Dropping the receivers stops the reader at its next send or recv.
        drop(full_rx);
        drop(free_tx);
        result
    })
}

/// A consumer of feature blocks (rows, index of the first row, row count),
/// for either element type.
trait Blocks {
    fn push<T: Copy + Into<f64> + Send + Sync>(
        &mut self,
        rows: &[T],
        start: usize,
        n: usize,
    ) -> Result<()>;
}

/// Pass 1: counts, sums and norms per class.
struct Pass1<'a> {
    stats: &'a mut ClassStats,
    labels: &'a [usize],
    threads: usize,
}

impl Blocks for Pass1<'_> {
    fn push<T: Copy + Into<f64> + Send + Sync>(
        &mut self,
        rows: &[T],
        start: usize,
        n: usize,
    ) -> Result<()> {
        self.stats
            .push_batch_parallel(rows, &self.labels[start..start + n], self.threads)
            .map_err(anyhow::Error::from)
    }
}

/// Pass 2: compactness, NC1 and NC4 ([`SecondPass::push_mixed`], which is
/// `push_batch` for a pass in f64).
struct Pass2<'a, 'h> {
    second: &'a mut SecondPass<'h>,
    labels: &'a [usize],
}

impl Blocks for Pass2<'_, '_> {
    fn push<T: Copy + Into<f64> + Send + Sync>(
        &mut self,
        rows: &[T],
        start: usize,
        n: usize,
    ) -> Result<()> {
        self.second
            .push_mixed(rows, &self.labels[start..start + n])
            .map_err(anyhow::Error::from)
    }
}

/// Where the features come from.
enum Source<'a> {
    /// A float32 little-endian NPY file, mapped and read in place.
    Mapped(&'a MappedF32),
    /// Any other NPY file, read chunk by chunk (float32 values kept narrow).
    File { path: &'a Path, is_f32: bool },
    /// Rows held in memory, `cols` values each (a numpy array).
    Memory(Rows<'a>, usize),
}

/// Row-major features held in memory, in their own element type.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// float32 values.
    F32(&'a [f32]),
    /// float64 values.
    F64(&'a [f64]),
}

impl Rows<'_> {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Rows::F32(v) => v.len(),
            Rows::F64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn to_f64(self) -> Vec<f64> {
        match self {
            Rows::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Rows::F64(v) => v.to_vec(),
        }
    }
}

/// Feeds blocks of `CHUNK_ROWS` rows of `values` (`cols` each) to `sink`,
/// checking finiteness first when `check` (the error names `name`).
fn push_blocks<T: Copy + Into<f64> + Send + Sync>(
    values: &[T],
    cols: usize,
    check: Option<&str>,
    sink: &mut impl Blocks,
) -> Result<()> {
    let d = cols.max(1);
    for (i, rows) in values.chunks(CHUNK_ROWS * d).enumerate() {
        let (start, n) = (i * CHUNK_ROWS, rows.len() / d);
        if let Some(name) = check {
            crate::npy::check_finite(name, rows, start, d)?;
        }
        sink.push(rows, start, n)?;
    }
    Ok(())
}

/// Feeds all the features to `sink` in blocks of `CHUNK_ROWS` rows: in
/// place from a mapped file or from memory (checking finiteness when
/// `check`, naming `name`; the chunked reader always does), else read chunk
/// by chunk, float32 values kept narrow (no f64 copy of the data). The
/// blocks are the same whatever the source, so the results are too.
fn stream(source: &Source, check: bool, name: &str, sink: &mut impl Blocks) -> Result<()> {
    let check = check.then_some(name);
    match *source {
        Source::Mapped(m) => {
            let d = m.cols().max(1);
            for (i, rows) in m.values().chunks(CHUNK_ROWS * d).enumerate() {
                let (start, n) = (i * CHUNK_ROWS, rows.len() / d);
                m.prefetch(start + CHUNK_ROWS..start + 2 * CHUNK_ROWS);
                m.populate(start..start + n);
                if check.is_some() {
                    m.check_finite(rows, start)?;
                }
                sink.push(rows, start, n)?;
                m.release(start..start + n);
            }
            Ok(())
        }
        Source::Memory(Rows::F32(v), cols) => push_blocks(v, cols, check, sink),
        Source::Memory(Rows::F64(v), cols) => push_blocks(v, cols, check, sink),
        Source::File { path, is_f32: true } => {
            for_each_chunk(path, MatrixReader::next_chunk_f32, |r, s, n| {
                sink.push(r, s, n)
            })
        }
        Source::File { path, .. } => {
            for_each_chunk(path, MatrixReader::next_chunk, |r, s, n| sink.push(r, s, n))
        }
    }
}

/// The class means must allow the analysis: none zero (angles to it are
/// undefined) and not all equal (no between-class spread: NC1 and the
/// centred angles are undefined).
fn check_means(stats: &ClassStats, name: &str) -> Result<()> {
    let means = stats
        .class_means()
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if let Some(c) = means.row_norms().iter().position(|&n| n == 0.0) {
        bail!(
            "{name}: the features of class {c} average to the zero vector (e.g. all zero); \
             angles to its mean are undefined"
        );
    }
    let first = means.row(0);
    if means.iter_rows().all(|r| r == first) {
        bail!("{name}: all class means are equal; NC1 and the centred angles are undefined");
    }
    Ok(())
}

/// The two passes over checked inputs (labels in 0..C, every class present,
/// shapes agreeing) and the analysis: the one computation behind the CLI's
/// files and the Python package's arrays.
fn analyze_source(
    source: &Source,
    labels: &[usize],
    (weights, bias): (Matrix, Option<Vec<f64>>),
    scale: Option<f64>,
    precision: Precision,
    names: &Names,
) -> Result<Analysis> {
    let mut stats = ClassStats::means_only(weights.rows(), weights.cols());
    let mut pass1 = Pass1 {
        stats: &mut stats,
        labels,
        threads: rayon::current_num_threads(),
    };
    stream(source, true, &names.features, &mut pass1)?;
    check_means(&stats, &names.features)?;
    let head =
        geometry::build_head(&weights, bias.as_deref(), scale).map_err(anyhow::Error::from)?;
    let mut second = SecondPass::with_precision(&stats, head.as_ref(), precision)
        .map_err(anyhow::Error::from)?;
    let mut pass2 = Pass2 {
        second: &mut second,
        labels,
    };
    // Pass 1 has checked every value.
    stream(source, false, &names.features, &mut pass2)?;
    geometry::analyze(&stats, &weights, bias.as_deref(), scale, Some(&second))
        .map_err(anyhow::Error::from)
        .with_context(|| format!("analysis of {} against {}", names.features, names.weights))
}

/// Analyse NPY files, streaming the features.
pub fn analyze_files(inp: &AnalyzeFiles) -> Result<Analysis> {
    let names = Names::of_files(inp);
    check_scale(inp.scale, inp.bias.is_some(), &names)?;
    let (w, c, d) = MatrixReader::open(&inp.weights, "class weights")?.read_all()?;
    let bias = inp
        .bias
        .as_deref()
        .map(|p| read_vector(p, "bias"))
        .transpose()?;
    let head = check_head(w, (c, d), bias, &names)?;
    let labels = read_labels(&inp.labels)?;
    let reader = MatrixReader::open(&inp.features, "features")?;
    check_features((reader.rows(), reader.cols()), d, &labels, &names)?;
    check_labels(&labels, c, &names.labels)?;
    let is_f32 = reader.is_f32();
    // float32 little-endian data is read in place; other files in chunks.
    let mapped = reader.map_f32()?;
    drop(reader);
    let source = match &mapped {
        Some(m) => Source::Mapped(m),
        None => Source::File {
            path: &inp.features,
            is_f32,
        },
    };
    analyze_source(&source, &labels, head, inp.scale, inp.precision, &names)
}

/// In-memory inputs of an analysis (the Python package's numpy arrays),
/// row-major, read in place.
#[derive(Debug, Clone)]
pub struct AnalyzeArrays<'a> {
    /// Features, `features_shape` = (N, D).
    pub features: Rows<'a>,
    /// (rows, columns) of the features.
    pub features_shape: (usize, usize),
    /// N labels (class indices, already known to be >= 0).
    pub labels: &'a [usize],
    /// Class weights, `weights_shape` = (C, D).
    pub weights: Rows<'a>,
    /// (rows, columns) of the weights.
    pub weights_shape: (usize, usize),
    /// C bias values (linear heads).
    pub bias: Option<Rows<'a>>,
    /// Scale s of a cosine head.
    pub scale: Option<f64>,
    /// Arithmetic of the second pass's products.
    pub precision: Precision,
    /// What the errors call each input.
    pub names: Names,
}

/// Analyse arrays held in memory: the same checks, passes and blocks as
/// [`analyze_files`], so the same inputs give the same report, bit for bit.
pub fn analyze_memory(inp: &AnalyzeArrays) -> Result<Analysis> {
    let names = &inp.names;
    check_scale(inp.scale, inp.bias.is_some(), names)?;
    let (c, d) = inp.weights_shape;
    check_shape(inp.weights.len(), inp.weights_shape, &names.weights)?;
    check_shape(inp.features.len(), inp.features_shape, &names.features)?;
    let w = inp.weights.to_f64();
    crate::npy::check_finite(&names.weights, &w, 0, d)?;
    let bias = inp.bias.map(Rows::to_f64);
    if let Some(b) = &bias {
        crate::npy::check_finite_vector(&names.bias, b)?;
    }
    let head = check_head(w, (c, d), bias, names)?;
    check_features(inp.features_shape, d, inp.labels, names)?;
    check_labels(inp.labels, c, &names.labels)?;
    let source = Source::Memory(inp.features, inp.features_shape.1);
    analyze_source(&source, inp.labels, head, inp.scale, inp.precision, names)
}

/// `values` holds exactly `shape` (a caller's bug otherwise, but never a panic).
fn check_shape(values: usize, (r, c): (usize, usize), name: &str) -> Result<()> {
    if r.checked_mul(c) != Some(values) {
        bail!("{name}: {values} values do not fill a {r} x {c} array");
    }
    Ok(())
}

/// Analyse in-memory features `[N, D]` (f32), labels and weights `[C, D]`.
pub fn analyze_arrays(
    features: &[f32],
    labels: &[usize],
    weights: &[f32],
    classes: usize,
    bias: Option<&[f32]>,
    scale: Option<f64>,
) -> Result<Analysis> {
    let d = weights.len() / classes.max(1);
    let weights = Matrix::from_f32(classes, d, weights).map_err(anyhow::Error::from)?;
    let bias: Option<Vec<f64>> = bias.map(|b| b.iter().map(|&v| v as f64).collect());
    let mut stats = ClassStats::means_only(classes, d);
    stats
        .push_batch(features, labels)
        .map_err(anyhow::Error::from)?;
    let head =
        geometry::build_head(&weights, bias.as_deref(), scale).map_err(anyhow::Error::from)?;
    let second = geometry::second_pass(&stats, head.as_ref(), features, labels)
        .map_err(anyhow::Error::from)?;
    geometry::analyze(&stats, &weights, bias.as_deref(), scale, Some(&second))
        .map_err(anyhow::Error::from)
}

/// A readable table of an analysis.
pub fn format_table(a: &Analysis) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>5} {:>8} {:>10} {:>12} {:>12} {:>12}",
        "class", "count", "w∠mean", "w∠centered", "w∠softmax-c", "compact"
    );
    for c in &a.classes {
        let _ = writeln!(
            s,
            "{:>5} {:>8} {:>9.2}° {:>11.2}° {:>11.2}° {:>11}",
            c.class,
            c.count,
            c.angle_w_mean_deg,
            c.angle_w_centered_mean_deg,
            c.angle_w_softmax_center_deg,
            c.compactness_deg
                .map(|v| format!("{v:.2}°"))
                .unwrap_or_else(|| "-".into())
        );
    }
    let _ = writeln!(
        s,
        "mean angle(w_c, class mean) {:.2}° (max {:.2}°); mean angle(w_c, softmax center) {:.2}°",
        a.mean_angle_w_mean_deg, a.max_angle_w_mean_deg, a.mean_angle_w_softmax_center_deg
    );
    let nc = &a.nc;
    let _ = writeln!(
        s,
        "NC1 {:.4}  NC2 equinorm means {:.4} weights {:.4}  equiangularity {:.4}  NC3 {:.4}  NC4 {}",
        nc.nc1,
        nc.nc2_equinorm_means,
        nc.nc2_equinorm_weights,
        nc.nc2_equiangularity,
        nc.nc3,
        nc.nc4
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        s,
        "symmetry: max |‖w‖-1| {:.4}, ‖mean w‖ {:.4}, off-plane energy {:.4}; separation {:.2}° (classes {} and {})",
        a.symmetry.unit_norm_dev,
        a.symmetry.mean_weight_norm,
        a.symmetry.coplanarity,
        a.separation_deg,
        a.separation_pair.0,
        a.separation_pair.1
    );
    if let Some(p) = &a.second_pass {
        let _ = writeln!(
            s,
            "second pass: {} products; {} samples' decisions recomputed in f64",
            p.precision, p.rechecked_f64
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (#15): the geometry's errors went through
    /// `anyhow!("{e}")`, which kept the words and lost the type; a caller
    /// (the probe, the Python package) can now tell them apart.
    #[test]
    fn geometry_errors_keep_their_type() {
        let e = analyze_arrays(
            &[f32::NAN, 0.0, 1.0, 0.0],
            &[0, 1],
            &[1.0, 0.0, 0.0, 1.0],
            2,
            None,
            None,
        )
        .unwrap_err();
        assert!(
            e.downcast_ref::<crate::geometry::GeometryError>().is_some(),
            "{e:#}"
        );
    }
}
