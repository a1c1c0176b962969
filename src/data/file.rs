//! Opening a data file that may be gzip-compressed (detected by the
//! `1f 8b` magic, not by the name) and reading it with a byte limit, so a
//! header that claims billions of items cannot make us allocate for them.

use std::fs::File;
use std::io::{self, BufReader, Chain, Cursor, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::error::{DataError, Result};

/// First two bytes of every gzip member.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Capacity reserved up front for a compressed stream; it grows past this
/// only as real data arrives.
const GZIP_RESERVE: u64 = 64 << 20;

type Peeked = Chain<Cursor<Vec<u8>>, BufReader<File>>;

enum Reader {
    Raw(Peeked),
    Gzip(Box<MultiGzDecoder<Peeked>>),
}

/// A data file opened for sequential reading, decompressed on the fly when
/// it is gzip.
pub(crate) struct Source {
    path: PathBuf,
    reader: Reader,
    /// Length on disk (compressed length for gzip).
    disk_len: u64,
}

impl Source {
    /// Opens `path` and sniffs the gzip magic.
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let io_err = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let disk_len = file.metadata().map_err(io_err)?.len();
        let mut file = BufReader::new(file);
        let mut magic = [0u8; 2];
        let got = read_full(&mut file, &mut magic).map_err(io_err)?;
        let gzip = got == 2 && magic == GZIP_MAGIC;
        let peeked = Cursor::new(magic[..got].to_vec()).chain(file);
        let reader = if gzip {
            Reader::Gzip(Box::new(MultiGzDecoder::new(peeked)))
        } else {
            Reader::Raw(peeked)
        };
        Ok(Source {
            path: path.to_path_buf(),
            reader,
            disk_len,
        })
    }

    /// Whether the file is gzip-compressed.
    #[cfg(test)]
    pub(crate) fn is_gzip(&self) -> bool {
        matches!(self.reader, Reader::Gzip(_))
    }

    /// Turns a read error into a `DataError` naming the file; errors while
    /// decompressing are reported as a corrupt gzip stream.
    fn error(&self, source: io::Error) -> DataError {
        let path = self.path.clone();
        match self.reader {
            Reader::Raw(_) => DataError::Io { path, source },
            Reader::Gzip(_) => DataError::Gzip { path, source },
        }
    }

    /// Fills as much of `buf` as the file allows; returns the bytes read.
    pub(crate) fn read_upto(&mut self, buf: &mut [u8]) -> Result<usize> {
        let got = match &mut self.reader {
            Reader::Raw(r) => read_full(r, buf),
            Reader::Gzip(r) => read_full(r, buf),
        };
        got.map_err(|e| self.error(e))
    }

    /// Reads the rest of the file, but at most `limit` bytes.
    ///
    /// `expected` only sizes the first allocation, which never exceeds what
    /// the file can plausibly hold.
    pub(crate) fn read_limited(&mut self, limit: u64, expected: u128) -> Result<Vec<u8>> {
        let plausible = match self.reader {
            Reader::Raw(_) => self.disk_len,
            Reader::Gzip(_) => GZIP_RESERVE,
        };
        let reserve = u64::try_from(expected).unwrap_or(u64::MAX).min(plausible);
        let mut data = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
        let got = match &mut self.reader {
            Reader::Raw(r) => r.take(limit).read_to_end(&mut data),
            Reader::Gzip(r) => r.take(limit).read_to_end(&mut data),
        };
        got.map_err(|e| self.error(e))?;
        Ok(data)
    }

    /// Reads exactly `expected` more bytes and checks the file ends there.
    ///
    /// Reads at most `expected + 1` bytes, so a lying header costs no more
    /// memory than the file really holds.
    pub(crate) fn read_exact_len(&mut self, expected: u128, what: &'static str) -> Result<Vec<u8>> {
        let limit = u64::try_from(expected.saturating_add(1)).unwrap_or(u64::MAX);
        let data = self.read_limited(limit, expected)?;
        let found = data.len() as u128;
        if found < expected {
            return Err(DataError::Truncated {
                path: self.path.clone(),
                what,
                found: data.len() as u64,
                expected,
            });
        }
        if found > expected {
            return Err(DataError::Trailing {
                path: self.path.clone(),
                what,
                expected,
            });
        }
        Ok(data)
    }
}

/// `read_exact` that reports how far it got instead of failing at EOF.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_detected_by_magic_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain-name");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"hello").unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let mut src = Source::open(&path).unwrap();
        assert!(src.is_gzip());
        assert_eq!(src.read_exact_len(5, "text").unwrap(), b"hello");

        let raw = dir.path().join("x.gz");
        std::fs::write(&raw, b"h").unwrap();
        let mut src = Source::open(&raw).unwrap();
        assert!(!src.is_gzip());
        assert_eq!(src.read_exact_len(1, "text").unwrap(), b"h");
    }

    #[test]
    fn limit_stops_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        let mut src = Source::open(&path).unwrap();
        assert_eq!(src.read_limited(10, 10).unwrap().len(), 10);
        let mut src = Source::open(&path).unwrap();
        let err = src.read_exact_len(999, "bytes").unwrap_err();
        assert!(matches!(err, DataError::Trailing { .. }), "{err}");
    }
}
