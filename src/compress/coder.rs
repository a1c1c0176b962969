//! The entropy-coded size of the codes: DEFLATE (Huffman coding of LZ77
//! tokens, RFC 1951) at level 9 through the `flate2` crate (its
//! `miniz_oxide` back end), one stream per model; with the zeroth-order
//! Shannon entropy of the codes beside it, the bound an ideal coder of
//! independent symbols reaches.

use anyhow::{Context, Result};
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use std::io::{Read, Write};

/// `codes` compressed (DEFLATE, level 9).
pub fn encode(codes: &[u8]) -> Result<Vec<u8>> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
    e.write_all(codes)
        .context("DEFLATE encoding of the codes")?;
    e.finish().context("DEFLATE encoding of the codes")
}

/// The codes back from [`encode`]'s bytes.
pub fn decode(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    DeflateDecoder::new(bytes)
        .read_to_end(&mut out)
        .context("DEFLATE decoding of the codes")?;
    Ok(out)
}

/// Zeroth-order entropy of `codes`, in bits per symbol.
pub fn entropy_bits(codes: &[u8]) -> f64 {
    if codes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &c in codes {
        counts[c as usize] += 1;
    }
    let n = codes.len() as f64;
    counts
        .iter()
        .filter(|&&k| k > 0)
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coded_codes_decode_to_the_same_codes_and_skewed_codes_shrink() {
        let codes: Vec<u8> = (0..20_000u32)
            .map(|i| if i % 10 == 0 { (i % 7) as u8 } else { 0 })
            .collect();
        let bytes = encode(&codes).unwrap();
        assert_eq!(decode(&bytes).unwrap(), codes);
        assert!(bytes.len() * 8 < codes.len(), "{} bytes", bytes.len());
        assert_eq!(entropy_bits(&[3; 10]), 0.0);
        assert!((entropy_bits(&[0, 1, 2, 3]) - 2.0).abs() < 1e-12);
        assert!(decode(&[0xff, 0x00, 0x13]).is_err());
    }
}
