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
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

type Reader = BufReader<File>;

fn open(path: &Path) -> Result<NpyFile<Reader>> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    check_header(&mut f)
        .and_then(|()| f.rewind().map_err(|e| e.to_string()))
        .map_err(|e| anyhow::anyhow!("{}: not a valid NPY file: {e}", path.display()))?;
    NpyFile::new(BufReader::with_capacity(1 << 20, f))
        .with_context(|| format!("{}: not a valid NPY file", path.display()))
}

/// Longest header accepted. numpy writes plain arrays' headers in 128 bytes
/// or so; a longer claim is a corrupt length field, not a bigger array.
const MAX_HEADER_LEN: u64 = 64 << 10;
/// Deepest bracket nesting accepted in the header: a plain array's has 2
/// (the dict and its shape tuple).
const MAX_HEADER_NESTING: usize = 4;

/// Checks the preamble and the header's size and nesting before npyz parses
/// it: npyz's header parser backtracks exponentially on deeply nested
/// brackets (found by fuzzing: 22 `[` took over 10 s), and it would read
/// whatever header length the file claims.
fn check_header(f: &mut File) -> std::result::Result<(), String> {
    let mut pre = Vec::with_capacity(12);
    f.by_ref()
        .take(12)
        .read_to_end(&mut pre)
        .map_err(|e| e.to_string())?;
    let got = pre.len();
    if got < 10 || &pre[..6] != b"\x93NUMPY" {
        return Err("no \\x93NUMPY preamble".into());
    }
    let len = match pre[6] {
        1 => u64::from(u16::from_le_bytes([pre[8], pre[9]])),
        2 | 3 if got == 12 => u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
        v => return Err(format!("unsupported format version {v}")),
    };
    if len > MAX_HEADER_LEN {
        return Err(format!(
            "the header claims {len} bytes, expected at most {MAX_HEADER_LEN}"
        ));
    }
    let start = if pre[6] == 1 { 10 } else { 12 };
    f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let mut header = Vec::new();
    f.by_ref()
        .take(len)
        .read_to_end(&mut header)
        .map_err(|e| e.to_string())?;
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    for &b in &header {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'(' | b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, b')' | b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_HEADER_NESTING {
        return Err(format!(
            "brackets nested {deepest} deep in the header, expected at most {MAX_HEADER_NESTING}"
        ));
    }
    Ok(())
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

/// Element type of a float matrix's data bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Float {
    F32 { big_endian: bool },
    F64 { big_endian: bool },
}

impl Float {
    fn size(self) -> usize {
        match self {
            Float::F32 { .. } => 4,
            Float::F64 { .. } => 8,
        }
    }

    /// Decodes the raw values in `raw` (the file's bytes of `dst.len()`
    /// values, in 4- or 8-byte words) into `dst`.
    fn decode(self, raw: &[u64], dst: &mut [f64]) {
        match self {
            Float::F32 { big_endian } => decode_f32(raw, big_endian, dst),
            Float::F64 { big_endian } => {
                for (o, &w) in dst.iter_mut().zip(raw) {
                    let bits = if big_endian {
                        u64::from_be(w)
                    } else {
                        u64::from_le(w)
                    };
                    *o = f64::from_bits(bits);
                }
            }
        }
    }
}

/// Decodes float32 words (the first `dst.len()` of `raw`'s bytes, 4 per
/// value) into `dst`, widened to `T` (f64) or kept (f32).
fn decode_f32<T: From<f32>>(raw: &[u64], big_endian: bool, dst: &mut [T]) {
    // SAFETY: u64 -> u32 view of the same bytes: u32 has no invalid bit
    // patterns and a smaller alignment.
    let words: &[u32] =
        unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<u32>(), raw.len() * 2) };
    for (o, &w) in dst.iter_mut().zip(words) {
        let bits = if big_endian {
            u32::from_be(w)
        } else {
            u32::from_le(w)
        };
        *o = T::from(f32::from_bits(bits));
    }
}

/// A float matrix read in chunks of rows: the data bytes are read in bulk
/// and decoded in place (no per-value parsing).
pub struct MatrixReader {
    path: PathBuf,
    rows: usize,
    cols: usize,
    next_row: usize,
    kind: Float,
    reader: Reader,
    /// Byte offset of the data in the file.
    data_start: u64,
    /// Raw data words of one chunk (u64 for alignment; f32 data uses both
    /// halves of each word).
    raw: Vec<u64>,
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
        let big_endian = match npy.dtype() {
            DType::Plain(t) => t.endianness() == npyz::Endianness::Big,
            _ => false,
        };
        let kind = match (tc, size) {
            (TypeChar::Float, 4) => Float::F32 { big_endian },
            (TypeChar::Float, 8) => Float::F64 { big_endian },
            _ => bail!(
                "{} ({what}): dtype must be float32 or float64",
                path.display()
            ),
        };
        let rows = usize::try_from(shape[0]).context("too many rows")?;
        let cols = usize::try_from(shape[1]).context("too many columns")?;
        let mut reader = npy.into_inner();
        // The header's shape must fit in the file: catches truncation before
        // a long pass, and never sizes a buffer from a corrupt header.
        let need = (rows as u128) * (cols as u128) * (kind.size() as u128);
        let start = std::io::Seek::stream_position(&mut reader)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let len = reader
            .get_ref()
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let have = len.saturating_sub(start) as u128;
        if have < need {
            bail!(
                "{} ({what}): truncated: the header says {rows} x {cols} values ({need} data bytes), \
                 but only {have} bytes follow the header",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            rows,
            cols,
            next_row: 0,
            kind,
            reader,
            data_start: start,
            raw: Vec::new(),
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

    /// Whether the file holds float32 values (see [`next_chunk_f32`](Self::next_chunk_f32)).
    pub fn is_f32(&self) -> bool {
        matches!(self.kind, Float::F32 { .. })
    }

    /// Read up to `max_rows` rows into `out` (replacing its contents) as f64; returns
    /// the number of rows read (0 at the end). NaN/Inf are errors.
    pub fn next_chunk(&mut self, max_rows: usize, out: &mut Vec<f64>) -> Result<usize> {
        let n = self.read_raw(max_rows)?;
        // Resizing to the length of the previous chunk writes nothing.
        out.resize(n * self.cols, 0.0);
        self.kind.decode(&self.raw, out);
        self.finish_chunk(out, n)
    }

    /// [`next_chunk`](Self::next_chunk) for a float32 file, without widening
    /// the values (half the memory traffic for consumers that widen as
    /// they go). Fails on a float64 file.
    pub fn next_chunk_f32(&mut self, max_rows: usize, out: &mut Vec<f32>) -> Result<usize> {
        let Float::F32 { big_endian } = self.kind else {
            bail!("{}: float64 data read as float32", self.path.display());
        };
        let n = self.read_raw(max_rows)?;
        out.resize(n * self.cols, 0.0);
        decode_f32(&self.raw, big_endian, out);
        self.finish_chunk(out, n)
    }

    /// Reads the bytes of the next (up to) `max_rows` rows into `raw`.
    fn read_raw(&mut self, max_rows: usize) -> Result<usize> {
        let n = max_rows.min(self.rows - self.next_row);
        let want = n * self.cols * self.kind.size();
        self.raw.resize(want.div_ceil(8), 0);
        // SAFETY: a byte view of the u64 buffer (any bytes are valid u64s),
        // `want <= 8 * raw.len()` bytes long.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(self.raw.as_mut_ptr().cast::<u8>(), want) };
        if let Err(e) = std::io::Read::read_exact(&mut self.reader, bytes) {
            bail!(
                "{}: truncated or unreadable data in rows {}..{} of {} ({e})",
                self.path.display(),
                self.next_row,
                self.next_row + n,
                self.rows
            );
        }
        Ok(n)
    }

    /// Rejects NaN/Inf in a decoded chunk of `n` rows, then moves past it.
    fn finish_chunk<T: Copy + Into<f64>>(&mut self, out: &[T], n: usize) -> Result<usize> {
        check_finite(&self.path.display(), out, self.next_row, self.cols)?;
        self.next_row += n;
        Ok(n)
    }

    /// The whole data of a float32 file mapped into memory, when it can be
    /// read in place: little-endian values on a little-endian machine at
    /// an offset aligned for f32 (NPY writers align it to 64 bytes).
    /// `None` otherwise (read with [`next_chunk_f32`](Self::next_chunk_f32)).
    pub fn map_f32(&self) -> Result<Option<MappedF32>> {
        if self.kind != (Float::F32 { big_endian: false }) || cfg!(target_endian = "big") {
            return Ok(None);
        }
        let Ok(start) = usize::try_from(self.data_start) else {
            return Ok(None);
        };
        let len = self.rows * self.cols;
        // SAFETY: the map is read-only and private to this process. The
        // file must not be truncated or rewritten while the map lives (a
        // documented limit of `analyze`: as with numpy's memmap, a file
        // shrunk underneath ends the process with SIGBUS).
        let map = unsafe { memmap2::Mmap::map(self.reader.get_ref()) }
            .with_context(|| format!("cannot map {} into memory", self.path.display()))?;
        // SAFETY: any 4 bytes are a valid f32; align_to only returns
        // aligned, in-bounds values.
        let (head, values, _) = unsafe { map[start.min(map.len())..].align_to::<f32>() };
        if !head.is_empty() || values.len() < len {
            return Ok(None);
        }
        Ok(Some(MappedF32 {
            path: self.path.clone(),
            map,
            start,
            len,
            cols: self.cols,
        }))
    }

    /// Read everything: `(values, rows, cols)`.
    pub fn read_all(mut self) -> Result<(Vec<f64>, usize, usize)> {
        let (rows, cols) = (self.rows, self.cols);
        let mut out = Vec::new();
        self.next_chunk(rows, &mut out)?;
        Ok((out, rows, cols))
    }
}

/// Rejects NaN/Inf in `values`, rows of `cols` values starting at row
/// `first_row` of `name` (a file's path, an argument's name): the error
/// names the row and column.
pub fn check_finite<T: Copy + Into<f64>>(
    name: &(impl std::fmt::Display + ?Sized),
    values: &[T],
    first_row: usize,
    cols: usize,
) -> Result<()> {
    // A branch-free scan first (vectorises); the position only on failure.
    let all_finite = values.iter().fold(true, |ok, &v| ok & v.into().is_finite());
    if let Some(i) = (!all_finite)
        .then(|| values.iter().position(|&v| !v.into().is_finite()))
        .flatten()
    {
        bail!(
            "{name}: non-finite value {} at row {}, column {}",
            values[i].into(),
            first_row + i / cols.max(1),
            i % cols.max(1)
        );
    }
    Ok(())
}

/// Alignment of the ranges given to `madvise`: 64 KiB is a multiple of every
/// common page size (4, 16, 64 KiB).
const PAGE_ALIGN: usize = 64 << 10;

/// The float32 data of an NPY matrix mapped into memory
/// ([`MatrixReader::map_f32`]).
pub struct MappedF32 {
    path: PathBuf,
    map: memmap2::Mmap,
    start: usize,
    len: usize,
    cols: usize,
}

impl MappedF32 {
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All values, row-major.
    pub fn values(&self) -> &[f32] {
        // SAFETY: checked aligned and long enough by `map_f32`.
        let (_, values, _) = unsafe { self.map[self.start..].align_to::<f32>() };
        &values[..self.len]
    }

    /// Maps the pages of rows `rows` in one call (MADV_POPULATE_READ,
    /// Linux 5.14+), cheaper than a page fault per few pages; best effort.
    pub fn populate(&self, rows: std::ops::Range<usize>) {
        let (lo, hi) = self.byte_range(rows);
        #[cfg(target_os = "linux")]
        if hi > lo {
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, lo, hi - lo);
        }
    }

    /// Asks the kernel to start reading rows `rows` from disk in the
    /// background (MADV_WILLNEED; returns at once), so that a cold file's
    /// reads overlap the work on the rows before them; best effort.
    pub fn prefetch(&self, rows: std::ops::Range<usize>) {
        let (lo, hi) = self.byte_range(rows);
        #[cfg(unix)]
        if hi > lo {
            let _ = self
                .map
                .advise_range(memmap2::Advice::WillNeed, lo, hi - lo);
        }
    }

    /// Byte offset of row `row` in the map (clamped to the data's end).
    fn byte(&self, row: usize) -> usize {
        self.start + (row * self.cols).min(self.len) * 4
    }

    /// Bytes `[lo, hi)` of rows `rows` in the map, `lo` rounded down to
    /// [`PAGE_ALIGN`].
    fn byte_range(&self, rows: std::ops::Range<usize>) -> (usize, usize) {
        (
            self.byte(rows.start) / PAGE_ALIGN * PAGE_ALIGN,
            self.byte(rows.end).min(self.map.len()),
        )
    }

    /// Drops the pages of rows `rows` from this process's memory (not from
    /// the page cache): the map's share of the resident set then stays at
    /// about one block instead of growing with N. Best effort; a later read
    /// of those rows faults them back in from the file.
    pub fn release(&self, rows: std::ops::Range<usize>) {
        // Whole aligned blocks only: the partial one at the end goes with
        // the next range.
        let (lo, hi) = self.byte_range(rows);
        let hi = hi / PAGE_ALIGN * PAGE_ALIGN;
        #[cfg(unix)]
        if hi > lo {
            // SAFETY: the map is read-only and file-backed; MADV_DONTNEED only
            // drops page-table entries, and the next access reads the same
            // file bytes back, so no borrowed value changes.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, lo, hi - lo)
            };
        }
    }

    /// Rejects NaN/Inf in `rows`, a block of the values starting at row
    /// `first_row` (the same error as the chunked reader's).
    pub fn check_finite(&self, rows: &[f32], first_row: usize) -> Result<()> {
        check_finite(&self.path.display(), rows, first_row, self.cols)
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
    check_finite_vector(&path.display(), &v)?;
    Ok(v)
}

/// Rejects NaN/Inf in the vector `values` of `name` (a file's path, an
/// argument's name): the error names the index.
pub fn check_finite_vector<T: Copy + Into<f64>>(
    name: &(impl std::fmt::Display + ?Sized),
    values: &[T],
) -> Result<()> {
    if let Some(i) = values.iter().position(|&x| !x.into().is_finite()) {
        bail!("{name}: non-finite value {} at index {i}", values[i].into());
    }
    Ok(())
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
    let name = path.display();
    match (tc, size) {
        (TypeChar::Int, 1) => class_indices(&name, &npy.into_vec::<i8>().with_context(ctx)?),
        (TypeChar::Int, 2) => class_indices(&name, &npy.into_vec::<i16>().with_context(ctx)?),
        (TypeChar::Int, 4) => class_indices(&name, &npy.into_vec::<i32>().with_context(ctx)?),
        (TypeChar::Int, 8) => class_indices(&name, &npy.into_vec::<i64>().with_context(ctx)?),
        (TypeChar::Uint, 1) => class_indices(&name, &npy.into_vec::<u8>().with_context(ctx)?),
        (TypeChar::Uint, 2) => class_indices(&name, &npy.into_vec::<u16>().with_context(ctx)?),
        (TypeChar::Uint, 4) => class_indices(&name, &npy.into_vec::<u32>().with_context(ctx)?),
        (TypeChar::Uint, 8) => class_indices(&name, &npy.into_vec::<u64>().with_context(ctx)?),
        _ => bail!(
            "{} (labels): dtype must be an integer type (int32 or int64)",
            path.display()
        ),
    }
}

/// Integer labels of `name` (a file's path, an argument's name) as class
/// indices: a negative one, or one beyond `i64`, is an error naming its index.
pub fn class_indices<T: Copy + TryInto<i64> + std::fmt::Display>(
    name: &(impl std::fmt::Display + ?Sized),
    values: &[T],
) -> Result<Vec<usize>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let wide: i64 = v.try_into().map_err(|_| {
                anyhow::anyhow!(
                    "{name}: label {v} at index {i} is not a class index (expected 0..C)"
                )
            })?;
            usize::try_from(wide)
                .map_err(|_| anyhow::anyhow!("{name}: label {wide} at index {i} is negative"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_bytes(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        std::fs::write(&p, bytes).unwrap();
        match MatrixReader::open(&p, "test") {
            Ok(_) => "ok".into(),
            Err(e) => format!("{e:#}"),
        }
    }

    fn npy_v1(header: &str) -> Vec<u8> {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&[0; 16]);
        b
    }

    #[test]
    fn a_plain_header_passes_the_pre_check() {
        let e = open_bytes(&npy_v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n",
        ));
        assert_eq!(e, "ok");
    }

    #[test]
    fn deeply_nested_headers_are_refused_before_npyz_parses_them() {
        // The fuzzing case: npyz took over 10 s on 22 nested `[`.
        let h = format!(
            "{{'descr': '<f4', {}'fortran_order': False, 'shape': (2, 2), }}\n",
            "[".repeat(22)
        );
        let e = open_bytes(&npy_v1(&h));
        assert!(e.contains("not a valid NPY file"), "{e}");
        assert!(e.contains("nested 24 deep"), "{e}");
        // Brackets inside quoted strings do not count.
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': '[[[[[[[[' }\n";
        assert!(!open_bytes(&npy_v1(h)).contains("nested"));
    }

    #[test]
    fn a_huge_header_length_is_refused() {
        let mut b = b"\x93NUMPY\x02\x00".to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(b"{'descr': '<f4'");
        let e = open_bytes(&b);
        assert!(e.contains("claims 4294967295 bytes"), "{e}");
    }
}
