//! `symfeat analyze` end to end on NPY files written by the test: closed
//! forms and bad input.
#![allow(clippy::needless_range_loop)]

mod common;

use assert_cmd::Command;
use ndarray::{Array1, Array2};
use ndarray_npy::write_npy;
use std::path::{Path, PathBuf};

fn symfeat() -> Command {
    Command::cargo_bin("symfeat").unwrap()
}

/// Polygon weights (C x D) in the plane of e0, e1.
fn polygon(c: usize, d: usize) -> Array2<f32> {
    Array2::from_shape_fn((c, d), |(k, j)| {
        let t = 2.0 * std::f32::consts::PI * k as f32 / c as f32;
        match j {
            0 => t.cos(),
            1 => t.sin(),
            _ => 0.0,
        }
    })
}

struct Files {
    _dir: tempfile::TempDir,
    features: PathBuf,
    labels: PathBuf,
    weights: PathBuf,
}

/// Features = 3 w_c plus a symmetric +-0.1 jitter along e2 (zero mean per class).
fn collapsed(c: usize, d: usize) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let w = polygon(c, d);
    let n = 4 * c;
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        let k = i % c;
        let jitter = if j == 2 {
            if (i / c).is_multiple_of(2) { 0.1 } else { -0.1 }
        } else {
            0.0
        };
        3.0 * w[[k, j]] + jitter
    });
    let y = Array1::from_shape_fn(n, |i| (i % c) as i64);
    let f = Files {
        features: dir.path().join("x.npy"),
        labels: dir.path().join("y.npy"),
        weights: dir.path().join("w.npy"),
        _dir: dir,
    };
    write_npy(&f.features, &x).unwrap();
    write_npy(&f.labels, &y).unwrap();
    write_npy(&f.weights, &w).unwrap();
    f
}

fn run(f: &Files, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "analyze".to_string(),
        "--features".into(),
        f.features.display().to_string(),
        "--labels".into(),
        f.labels.display().to_string(),
        "--weights".into(),
        f.weights.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    symfeat().args(&args).output().unwrap()
}

#[test]
fn features_on_their_weights_give_zero_angles_and_a_symmetric_head() {
    let f = collapsed(6, 4);
    let json = f.weights.with_file_name("a.json");
    let out = run(&f, &["--scale", "16", "--json", json.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("NC1"), "{stdout}");
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let classes = a["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 6);
    for c in classes {
        for key in [
            "angle_w_mean_deg",
            "angle_w_centered_mean_deg",
            "angle_w_softmax_center_deg",
        ] {
            let v = c[key].as_f64().unwrap();
            assert!(v.abs() < 1e-3, "{key} = {v}");
        }
        assert_eq!(c["count"].as_u64(), Some(4));
        let comp = c["compactness_deg"].as_f64().unwrap();
        let want = (0.1f64 / 3.0).atan().to_degrees();
        assert!((comp - want).abs() < 1e-3, "compactness {comp} vs {want}");
    }
    let nc = &a["nc"];
    for key in [
        "nc1",
        "nc2_equinorm_means",
        "nc2_equinorm_weights",
        "nc2_equiangularity",
        "nc2_max_angle",
        "nc3",
        "nc4",
    ] {
        assert!(nc[key].is_number(), "{key} missing");
    }
    assert!(nc["nc3"].as_f64().unwrap() < 1e-6);
    assert!(nc["nc4"].as_f64().unwrap() == 0.0);
    // NC1 = Tr(Sigma_W Sigma_B^+)/C: the jitter is orthogonal to the plane of the means.
    assert!(nc["nc1"].as_f64().unwrap() < 1e-9, "{}", nc["nc1"]);
    let s = &a["symmetry"];
    for key in ["unit_norm_dev", "mean_weight_norm", "coplanarity"] {
        assert!(s[key].as_f64().unwrap() < 1e-6, "{key} = {}", s[key]);
    }
    assert!((a["separation_deg"].as_f64().unwrap() - 60.0).abs() < 1e-3);
}

fn fails(f: &Files, extra: &[&str], words: &[&str]) {
    let out = run(f, extra);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

fn write(p: &Path, bytes: &[u8]) {
    std::fs::write(p, bytes).unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let f = collapsed(4, 3);
    let good_x = std::fs::read(&f.features).unwrap();
    let good_y = std::fs::read(&f.labels).unwrap();
    let restore = |f: &Files| {
        write(&f.features, &good_x);
        write(&f.labels, &good_y);
    };
    // NaN feature
    let mut x = Array2::<f32>::ones((16, 3));
    x[[5, 2]] = f32::NAN;
    write_npy(&f.features, &x).unwrap();
    fails(&f, &[], &["x.npy", "non-finite", "row 5", "column 2"]);
    // integer features
    write_npy(&f.features, &Array2::<i32>::ones((16, 3))).unwrap();
    fails(&f, &[], &["x.npy", "float32 or float64"]);
    // wrong rank
    write_npy(&f.features, &Array1::<f32>::ones(16)).unwrap();
    fails(&f, &[], &["x.npy", "2-D"]);
    // D mismatch
    write_npy(&f.features, &Array2::<f32>::ones((16, 5))).unwrap();
    fails(&f, &[], &["x.npy", "D = 5", "D = 3"]);
    // count mismatch
    write_npy(&f.features, &Array2::<f32>::ones((15, 3))).unwrap();
    fails(&f, &[], &["15 rows", "16 labels"]);
    // Fortran order
    let mut bytes = common::npy_bytes("<f4", true, "(16, 3)", &[]);
    bytes.extend(std::iter::repeat_n(0u8, 16 * 3 * 4));
    write(&f.features, &bytes);
    fails(&f, &[], &["x.npy", "Fortran"]);
    // truncated
    write(&f.features, &good_x[..good_x.len() - 7]);
    fails(&f, &[], &["x.npy", "truncated"]);
    // not NPY at all
    write(&f.features, b"hello");
    fails(&f, &[], &["x.npy", "NPY"]);
    restore(&f);
    // label out of range, negative label, float labels, empty class
    write_npy(
        &f.labels,
        &Array1::from_shape_fn(16, |i| if i == 3 { 9i64 } else { (i % 4) as i64 }),
    )
    .unwrap();
    fails(&f, &[], &["y.npy", "label 9", "index 3"]);
    write_npy(
        &f.labels,
        &Array1::from_shape_fn(16, |i| if i == 2 { -1i32 } else { (i % 4) as i32 }),
    )
    .unwrap();
    fails(&f, &[], &["y.npy", "negative"]);
    write_npy(&f.labels, &Array1::<f32>::zeros(16)).unwrap();
    fails(&f, &[], &["y.npy", "integer"]);
    write_npy(&f.labels, &Array1::from_shape_fn(16, |i| (i % 3) as i64)).unwrap();
    fails(&f, &[], &["y.npy", "class 3 has no sample"]);
    restore(&f);
    // zero weight row, bias with scale, bad scale
    let mut w = polygon(4, 3);
    w.row_mut(1).fill(0.0);
    write_npy(&f.weights, &w).unwrap();
    fails(&f, &[], &["w.npy", "row 1", "zero"]);
    write_npy(&f.weights, &polygon(4, 3)).unwrap();
    let b = f.weights.with_file_name("b.npy");
    write_npy(&b, &Array1::<f32>::zeros(4)).unwrap();
    fails(
        &f,
        &["--bias", b.to_str().unwrap(), "--scale", "16"],
        &["--scale", "--bias"],
    );
    fails(&f, &["--scale", "0"], &["--scale", "> 0"]);
    write_npy(&b, &Array1::<f32>::zeros(3)).unwrap();
    fails(&f, &["--bias", b.to_str().unwrap()], &["b.npy", "C = 4"]);
    // the valid files still analyse
    assert!(run(&f, &[]).status.success());
}

#[test]
fn landscape_of_a_polygon_head_peaks_at_p_max_on_its_weight() {
    let dir = tempfile::tempdir().unwrap();
    let (c, s) = (10usize, 16.0f64);
    let w = polygon(c, 4);
    let wp = dir.path().join("w.npy");
    write_npy(&wp, &w).unwrap();
    let out = dir.path().join("land");
    let args = [
        "landscape",
        "--weights",
        wp.to_str().unwrap(),
        "--class",
        "3",
        "--scale",
        "16",
        "--radii",
        "5",
        "--angles",
        "36",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = symfeat().args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("landscape.csv")).unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 5 * 36);
    // p_max = e^s / sum_j e^(s cos(2 pi j / C)), independent of R for a cosine head
    let z: f64 = (0..c)
        .map(|j| (s * (2.0 * std::f64::consts::PI * j as f64 / c as f64).cos()).exp())
        .sum();
    let p_max = s.exp() / z;
    for r in &rows {
        assert!(r[2] <= p_max + 1e-5, "{} > {p_max}", r[2]);
        if r[1] == 0.0 {
            assert!((r[2] - p_max).abs() < 1e-5, "theta 0: {} vs {p_max}", r[2]);
        }
    }
    // The neighbour w_2 or w_4 lies 36 degrees away: p_3 there is the neighbour's p_max share.
    let at36: Vec<f64> = rows
        .iter()
        .filter(|r| (r[1] - 36.0).abs() < 1e-9)
        .map(|r| r[2])
        .collect();
    let want = (s * (36f64.to_radians()).cos()).exp() / z;
    assert!(
        at36.iter().all(|p| (p - want).abs() < 1e-5),
        "{at36:?} vs {want}"
    );
    for ext in ["png", "svg"] {
        let bytes = std::fs::read(out.join(format!("landscape.{ext}"))).unwrap();
        assert!(bytes.len() > 1000, "{ext} too small");
    }
    assert!(
        std::fs::read(out.join("landscape.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    let o = symfeat()
        .args([
            "landscape",
            "--weights",
            wp.to_str().unwrap(),
            "--class",
            "10",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--class 10"));
}

/// An NPY v1 file of `rows x cols` values with dtype `descr` from raw
/// data bytes.
fn raw_npy(p: &Path, descr: &str, rows: usize, cols: usize, data: &[u8]) {
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(p, bytes).unwrap();
}

/// One data set as float32 little-endian (read in place), float32
/// big-endian and float64 (read in chunks), analysed with mixed-precision
/// products, and once with f64 products: the same NC4 and compactness,
/// NC1 within 1e-6. N crosses the 8,192-row chunks.
#[test]
fn precisions_and_file_layouts_agree() {
    let (n, d, c) = (20_000, 12, 5);
    let mut s = 3u64;
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let centres: Vec<f64> = (0..c * d).map(|_| 10.0 + 2.0 * rnd()).collect();
    let y: Vec<i64> = (0..n).map(|i| ((i * 31 + i / 7) % c) as i64).collect();
    let x: Vec<f32> = (0..n * d)
        .map(|i| (centres[y[i / d] as usize * d + i % d] + 3.0 * rnd()) as f32)
        .collect();
    let w = Array2::from_shape_fn((c, d), |(k, j)| (centres[k * d + j] - 10.0 + rnd()) as f32);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    write_npy(path("y.npy"), &Array1::from(y)).unwrap();
    write_npy(path("w.npy"), &w).unwrap();
    let le: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let be: Vec<u8> = x.iter().flat_map(|v| v.to_be_bytes()).collect();
    let f64s: Vec<u8> = x.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
    raw_npy(&path("le.npy"), "<f4", n, d, &le);
    raw_npy(&path("be.npy"), ">f4", n, d, &be);
    raw_npy(&path("f64.npy"), "<f8", n, d, &f64s);
    let analyse = |features: &str, precision: &str| -> serde_json::Value {
        let json = path(&format!("{features}-{precision}.json"));
        let f = Files {
            _dir: tempfile::tempdir().unwrap(),
            features: path(features),
            labels: path("y.npy"),
            weights: path("w.npy"),
        };
        let out = run(
            &f,
            &["--precision", precision, "--json", json.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
    };
    let exact = analyse("le.npy", "f64");
    assert_eq!(exact["second_pass"]["precision"], "f64");
    let nc4 = exact["nc"]["nc4"].as_f64().unwrap();
    assert!(
        nc4 > 0.001,
        "the data should have NC4 mismatches, got {nc4}"
    );
    let nc1 = exact["nc"]["nc1"].as_f64().unwrap();
    for features in ["le.npy", "be.npy", "f64.npy"] {
        let a = analyse(features, "mixed");
        assert_eq!(a["second_pass"]["precision"], "mixed", "{features}");
        assert_eq!(a["nc"]["nc4"].as_f64(), Some(nc4), "{features}");
        let got = a["nc"]["nc1"].as_f64().unwrap();
        assert!(
            (got - nc1).abs() <= 1e-6 * nc1,
            "{features}: NC1 {got} vs {nc1}"
        );
        for (p, q) in a["classes"]
            .as_array()
            .unwrap()
            .iter()
            .zip(exact["classes"].as_array().unwrap())
        {
            assert_eq!(p["compactness_deg"], q["compactness_deg"], "{features}");
            assert_eq!(p["angle_w_mean_deg"], q["angle_w_mean_deg"], "{features}");
        }
    }
}
