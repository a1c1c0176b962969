//! IDX reader (MNIST, Fashion-MNIST), raw or gzip-compressed.
//!
//! Format (big-endian): a magic `00 00 TT DD` (`TT` = 0x08 unsigned byte,
//! `DD` = number of dimensions), one `u32` per dimension, then the data.
//! Images are `[n, rows, cols]` (magic 0x00000803), labels `[n]`
//! (0x00000801). The data length must match the header exactly: short files
//! and trailing bytes are both errors. Header sizes are never trusted for
//! allocation; see `file::Source::read_exact_len`.

use std::path::Path;

use super::error::{DataError, Result};
use super::file::Source;

/// Magic of an IDX unsigned-byte 3-D array (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an IDX unsigned-byte 1-D array (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads an IDX image file: returns `(pixels, n, rows, cols)`, pixels
/// row-major, image after image (`n * rows * cols` bytes).
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize)> {
    let mut src = Source::open(path)?;
    let dims = read_header::<3>(&mut src, path, IMAGES_MAGIC, "IDX unsigned-byte images")?;
    let [n, rows, cols] = dims;
    for (what, v) in [("rows", rows), ("cols", cols)] {
        if v == 0 {
            return Err(DataError::BadDimension {
                path: path.to_path_buf(),
                what,
                found: 0,
                expected: "at least 1".into(),
            });
        }
    }
    let expected = u128::from(n) * u128::from(rows) * u128::from(cols);
    let pixels = src.read_exact_len(expected, "pixel data")?;
    // The data matched the header, so every factor fits in memory, hence in usize.
    Ok((pixels, n as usize, rows as usize, cols as usize))
}

/// Reads an IDX label file: one byte per item.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let mut src = Source::open(path)?;
    let [n] = read_header::<1>(&mut src, path, LABELS_MAGIC, "IDX unsigned-byte labels")?;
    src.read_exact_len(u128::from(n), "label data")
}

/// Reads and checks the magic and the `D` dimension sizes.
fn read_header<const D: usize>(
    src: &mut Source,
    path: &Path,
    magic: u32,
    what: &'static str,
) -> Result<[u32; D]> {
    let header_len = 4 + 4 * D;
    let mut header = [0u8; 16];
    let header = &mut header[..header_len];
    let got = src.read_upto(header)?;
    let truncated = |got: usize| DataError::Truncated {
        path: path.to_path_buf(),
        what: "header",
        found: got as u64,
        expected: header_len as u128,
    };
    if got < 4 {
        return Err(truncated(got));
    }
    let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
            hint: describe_magic(found),
        });
    }
    if got < header_len {
        return Err(truncated(got));
    }
    let mut dims = [0u32; D];
    for (i, d) in dims.iter_mut().enumerate() {
        let b = &header[4 + 4 * i..8 + 4 * i];
        *d = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(dims)
}

/// Says what a wrong magic looks like, to tell a label file from an image
/// file from something that is not IDX at all.
fn describe_magic(found: u32) -> String {
    let [z0, z1, dtype, ndim] = found.to_be_bytes();
    if z0 != 0 || z1 != 0 {
        return "found is not an IDX magic (first two bytes must be zero)".into();
    }
    let ty = match dtype {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown type",
    };
    format!("found is IDX dtype 0x{dtype:02x} ({ty}) with {ndim} dimension(s)")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::path::PathBuf;

    /// Bytes of an IDX image file.
    pub(crate) fn images_bytes(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut v = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [n, rows, cols] {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(pixels);
        v
    }

    /// Bytes of an IDX label file.
    pub(crate) fn labels_bytes(labels: &[u8]) -> Vec<u8> {
        let mut v = LABELS_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn sample_pixels(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 37 % 256) as u8).collect()
    }

    #[test]
    fn raw_and_gzip_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let px = sample_pixels(3 * 4 * 5);
        let bytes = images_bytes(3, 4, 5, &px);
        for (name, b) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
            let p = write(dir.path(), name, &b);
            let (got, n, r, c) = read_images(&p).unwrap();
            assert_eq!((n, r, c), (3, 4, 5));
            assert_eq!(got, px);
        }
        let labels = [0u8, 9, 3];
        for (name, b) in [
            ("l", labels_bytes(&labels)),
            ("lgz", gzip(&labels_bytes(&labels))),
        ] {
            let p = write(dir.path(), name, &b);
            assert_eq!(read_labels(&p).unwrap(), labels);
        }
    }

    #[test]
    fn truncated_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let px = sample_pixels(10 * 784);
        let bytes = images_bytes(60000, 28, 28, &px);
        for (name, b) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
            let p = write(dir.path(), name, &b);
            let err = read_images(&p).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, DataError::Truncated { .. }), "{msg}");
            assert!(
                msg.contains("truncated: 7840 bytes of pixel data, expected 47040000"),
                "{msg}"
            );
            assert!(msg.contains(name), "message must name the file: {msg}");
        }
    }

    #[test]
    fn truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = images_bytes(1, 1, 1, &[5]);
        let p = write(dir.path(), "h", &bytes[..10]);
        let msg = read_images(&p).unwrap_err().to_string();
        assert!(
            msg.contains("truncated: 10 bytes of header, expected 16"),
            "{msg}"
        );
        let p = write(dir.path(), "empty", &[]);
        let msg = read_labels(&p).unwrap_err().to_string();
        assert!(
            msg.contains("truncated: 0 bytes of header, expected 8"),
            "{msg}"
        );
    }

    #[test]
    fn trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = images_bytes(2, 2, 2, &sample_pixels(8));
        bytes.push(0);
        for (name, b) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
            let p = write(dir.path(), name, &b);
            let err = read_images(&p).unwrap_err();
            assert!(
                matches!(err, DataError::Trailing { expected: 8, .. }),
                "{err}"
            );
        }
        let mut lb = labels_bytes(&[1, 2]);
        lb.extend_from_slice(b"junk");
        let p = write(dir.path(), "labels", &lb);
        let err = read_labels(&p).unwrap_err();
        assert!(
            matches!(err, DataError::Trailing { expected: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn wrong_magic() {
        let dir = tempfile::tempdir().unwrap();
        // A label file given as images.
        let p = write(dir.path(), "labels", &labels_bytes(&[1, 2]));
        let err = read_images(&p).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("bad magic 0x00000801, expected 0x00000803"),
            "{msg}"
        );
        assert!(msg.contains("1 dimension"), "{msg}");
        // Images given as labels.
        let p = write(dir.path(), "images", &images_bytes(1, 1, 1, &[0]));
        let msg = read_labels(&p).unwrap_err().to_string();
        assert!(
            msg.contains("bad magic 0x00000803, expected 0x00000801"),
            "{msg}"
        );
        // Not IDX at all.
        let p = write(dir.path(), "text", b"hello world, not idx");
        let msg = read_images(&p).unwrap_err().to_string();
        assert!(msg.contains("not an IDX magic"), "{msg}");
        // Float IDX.
        let mut b = images_bytes(1, 1, 1, &[0, 0, 0, 0]);
        b[2] = 0x0D;
        let p = write(dir.path(), "float", &b);
        let msg = read_images(&p).unwrap_err().to_string();
        assert!(msg.contains("0x00000d03") && msg.contains("f32"), "{msg}");
    }

    #[test]
    fn wrong_dimension() {
        let dir = tempfile::tempdir().unwrap();
        // ndim byte 2 instead of 3.
        let mut b = images_bytes(1, 2, 2, &[0; 4]);
        b[3] = 2;
        let p = write(dir.path(), "ndim", &b);
        let msg = read_images(&p).unwrap_err().to_string();
        assert!(
            msg.contains("bad magic 0x00000802, expected 0x00000803"),
            "{msg}"
        );
        assert!(msg.contains("with 2 dimension"), "{msg}");
        // Zero columns.
        let p = write(dir.path(), "zero", &images_bytes(1, 28, 0, &[]));
        let err = read_images(&p).unwrap_err();
        assert!(
            matches!(err, DataError::BadDimension { what: "cols", .. }),
            "{err}"
        );
    }

    #[test]
    fn huge_header_counts_do_not_allocate() {
        let dir = tempfile::tempdir().unwrap();
        // 2^32-1 images of 65535x65535: ~1.8e19 bytes announced.
        let bytes = images_bytes(u32::MAX, u32::MAX, u32::MAX, &sample_pixels(100));
        for (name, b) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
            let p = write(dir.path(), name, &b);
            let err = read_images(&p).unwrap_err();
            let expected = u128::from(u32::MAX).pow(3);
            assert!(
                matches!(err, DataError::Truncated { found: 100, expected: e, .. } if e == expected),
                "{err}"
            );
        }
        let mut lb = LABELS_MAGIC.to_be_bytes().to_vec();
        lb.extend_from_slice(&u32::MAX.to_be_bytes());
        lb.extend_from_slice(&[1, 2, 3]);
        let p = write(dir.path(), "labels", &gzip(&lb));
        let err = read_labels(&p).unwrap_err();
        assert!(
            matches!(err, DataError::Truncated { found: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn corrupt_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = images_bytes(20, 8, 8, &sample_pixels(20 * 64));
        let good = gzip(&bytes);
        // Keep the 10-byte gzip header valid, corrupt the deflate stream.
        let mut bad = good.clone();
        for b in &mut bad[12..good.len() - 8] {
            *b ^= 0x5A;
        }
        let p = write(dir.path(), "bad.gz", &bad);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err}");
        assert!(err.to_string().contains("gzip stream is corrupt"), "{err}");
        // Wrong CRC only.
        let mut bad = good.clone();
        let k = bad.len() - 8;
        bad[k] ^= 1;
        let p = write(dir.path(), "crc.gz", &bad);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err}");
        // Compressed file cut short.
        let p = write(dir.path(), "cut.gz", &good[..good.len() / 2]);
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err}");
    }

    #[test]
    fn missing_file_names_path() {
        let err = read_images(Path::new("/nonexistent/x-idx3-ubyte")).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(
            err.to_string().starts_with("/nonexistent/x-idx3-ubyte: "),
            "{err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Arbitrary bytes, raw or gzip, never panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            header in any::<[u32; 3]>(),
            valid_magic in any::<bool>(),
            zip in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = if valid_magic {
                images_bytes(header[0] % 8, header[1] % 4, header[2], &[])
            } else {
                header[0].to_be_bytes().to_vec()
            };
            bytes.extend_from_slice(&body);
            if zip { bytes = gzip(&bytes); }
            let p = write(dir.path(), "f", &bytes);
            if let Ok((px, n, r, c)) = read_images(&p) {
                prop_assert_eq!(px.len(), n * r * c);
            }
            if let Ok(l) = read_labels(&p) {
                prop_assert!(l.len() <= body.len());
            }
        }
    }
}
