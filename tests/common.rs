//! Helpers shared by the integration tests: tiny datasets in the real file
//! formats, written by the tests themselves.
#![allow(dead_code)]

use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::Path;

/// IDX images file bytes (magic 0x803) for `n` images of `rows x cols`.
pub fn idx_images(pixels: &[u8], n: usize, rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 3];
    for v in [n, rows, cols] {
        out.extend_from_slice(&(v as u32).to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// IDX labels file bytes (magic 0x801).
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 1];
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Gzip `bytes`.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A learnable synthetic MNIST-format dataset: class k lights a 6x6 patch at
/// a class-specific place, plus noise. Written as the four IDX .gz files.
pub fn write_synthetic_mnist(dir: &Path, n_train: usize, n_test: usize, seed: u64) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let mut pixels = vec![0u8; n * 28 * 28];
        let mut labels = vec![0u8; n];
        for i in 0..n {
            let k = i % 10;
            labels[i] = k as u8;
            let img = &mut pixels[i * 784..(i + 1) * 784];
            for p in img.iter_mut() {
                *p = (next() % 60) as u8;
            }
            let (r0, c0) = (2 + (k / 5) * 12, 1 + (k % 5) * 5);
            for r in r0..r0 + 6 {
                for c in c0..c0 + 5 {
                    img[r * 28 + c] = 200 + (next() % 56) as u8;
                }
            }
        }
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            gz(&idx_images(&pixels, n, 28, 28)),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            gz(&idx_labels(&labels)),
        )
        .unwrap();
    }
}

/// NPY (version 1.0) bytes with any header (dtype `descr`, order, shape
/// literal such as `"(16, 3)"`) followed by raw `data`.
pub fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let mut h = dict.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// Train a small run on the synthetic MNIST of `data` into `out` (batch
/// 32, one thread, a 100-image probe): `symfeat train` with `args`.
pub fn train_run(data: &Path, out: &Path, args: &[&str]) {
    let o = assert_cmd::Command::cargo_bin("symfeat")
        .unwrap()
        .args([
            "train",
            "--dataset",
            "mnist",
            "--batch",
            "32",
            "--threads",
            "1",
        ])
        .args(["--probe-train-samples", "100"])
        .args(args)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
