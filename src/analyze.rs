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

fn check_labels(labels: &[usize], classes: usize, path: &Path) -> Result<()> {
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= classes) {
        bail!(
            "{}: label {l} at index {i} is outside 0..{classes} (C from the weights)",
            path.display()
        );
    }
    let mut seen = vec![false; classes];
    labels.iter().for_each(|&l| seen[l] = true);
    if let Some(c) = seen.iter().position(|s| !s) {
        bail!(
            "{}: class {c} has no sample; every class needs at least one",
            path.display()
        );
    }
    Ok(())
}

fn check_scale(scale: Option<f64>, bias: bool) -> Result<()> {
    if let Some(s) = scale
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--scale {s}: expected a finite number > 0");
    }
    if scale.is_some() && bias {
        bail!("--scale (cosine head) and --bias (linear head) exclude each other");
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

/// Feeds the whole features file to `sink` in blocks of `CHUNK_ROWS` rows:
/// in place from `mapped` (checking finiteness when `check`; the chunked
/// reader always does), else read chunk by chunk, float32 values kept
/// narrow (no f64 copy of the data).
fn stream(
    features: &Path,
    mapped: Option<&MappedF32>,
    is_f32: bool,
    check: bool,
    sink: &mut impl Blocks,
) -> Result<()> {
    match mapped {
        Some(m) => {
            let d = m.cols().max(1);
            for (i, rows) in m.values().chunks(CHUNK_ROWS * d).enumerate() {
                let (start, n) = (i * CHUNK_ROWS, rows.len() / d);
                m.prefetch(start + CHUNK_ROWS..start + 2 * CHUNK_ROWS);
                m.populate(start..start + n);
                if check {
                    m.check_finite(rows, start)?;
                }
                sink.push(rows, start, n)?;
                m.release(start..start + n);
            }
            Ok(())
        }
        None if is_f32 => for_each_chunk(features, MatrixReader::next_chunk_f32, |r, s, n| {
            sink.push(r, s, n)
        }),
        None => for_each_chunk(features, MatrixReader::next_chunk, |r, s, n| {
            sink.push(r, s, n)
        }),
    }
}

/// The class means must allow the analysis: none zero (angles to it are
/// undefined) and not all equal (no between-class spread: NC1 and the
/// centred angles are undefined).
fn check_means(stats: &ClassStats, features: &Path) -> Result<()> {
    let means = stats
        .class_means()
        .map_err(|e| anyhow::anyhow!("{}: {e}", features.display()))?;
    if let Some(c) = means.row_norms().iter().position(|&n| n == 0.0) {
        bail!(
            "{}: the features of class {c} average to the zero vector (e.g. all zero); \
             angles to its mean are undefined",
            features.display()
        );
    }
    let first = means.row(0);
    if means.iter_rows().all(|r| r == first) {
        bail!(
            "{}: all class means are equal; NC1 and the centred angles are undefined",
            features.display()
        );
    }
    Ok(())
}

/// Analyse NPY files, streaming the features.
pub fn analyze_files(inp: &AnalyzeFiles) -> Result<Analysis> {
    check_scale(inp.scale, inp.bias.is_some())?;
    let (w, c, d) = MatrixReader::open(&inp.weights, "class weights")?.read_all()?;
    if c < 2 {
        bail!(
            "{}: need at least 2 classes (rows), got {c} x {d}",
            inp.weights.display()
        );
    }
    if d < 1 {
        bail!(
            "{}: expected at least 1 column (D >= 1), got {c} x {d}",
            inp.weights.display()
        );
    }
    let weights = Matrix::new(c, d, w).map_err(anyhow::Error::from)?;
    if let Some(r) = weights.row_norms().iter().position(|&n| n == 0.0) {
        bail!(
            "{}: weight row {r} is zero; angles to it are undefined",
            inp.weights.display()
        );
    }
    let bias = match &inp.bias {
        Some(p) => {
            let b = read_vector(p, "bias")?;
            if b.len() != c {
                bail!(
                    "{}: bias has {} values, expected C = {c}",
                    p.display(),
                    b.len()
                );
            }
            Some(b)
        }
        None => None,
    };
    let labels = read_labels(&inp.labels)?;
    let reader = MatrixReader::open(&inp.features, "features")?;
    if reader.cols() != d {
        bail!(
            "{}: features have D = {}, but the weights in {} have D = {d}",
            inp.features.display(),
            reader.cols(),
            inp.weights.display()
        );
    }
    if reader.rows() != labels.len() {
        bail!(
            "{} has {} rows but {} has {} labels",
            inp.features.display(),
            reader.rows(),
            inp.labels.display(),
            labels.len()
        );
    }
    check_labels(&labels, c, &inp.labels)?;

    let mut stats = ClassStats::means_only(c, d);
    let is_f32 = reader.is_f32();
    // float32 little-endian data is read in place; other files in chunks.
    let mapped = reader.map_f32()?;
    drop(reader);
    let mut pass1 = Pass1 {
        stats: &mut stats,
        labels: &labels,
        threads: rayon::current_num_threads(),
    };
    stream(&inp.features, mapped.as_ref(), is_f32, true, &mut pass1)?;
    check_means(&stats, &inp.features)?;
    let head =
        geometry::build_head(&weights, bias.as_deref(), inp.scale).map_err(anyhow::Error::from)?;
    let mut second = SecondPass::with_precision(&stats, head.as_ref(), inp.precision)
        .map_err(anyhow::Error::from)?;
    let mut pass2 = Pass2 {
        second: &mut second,
        labels: &labels,
    };
    // Pass 1 has checked every value.
    stream(&inp.features, mapped.as_ref(), is_f32, false, &mut pass2)?;
    geometry::analyze(&stats, &weights, bias.as_deref(), inp.scale, Some(&second))
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "analysis of {} against {}",
                inp.features.display(),
                inp.weights.display()
            )
        })
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
