//! Bad input never panics (issue #7): a table of cases, each running the real
//! binary on files this test writes. Every case must exit with code 2, name
//! the offending file or option and say what was expected (the words listed
//! with the case), and never print a panic or a backtrace. All cases run;
//! the failures are listed together, by case name, at the end.
//!
//! The case tables are kept one case per line or two (`rustfmt::skip`).

mod common;

use ndarray::{Array1, Array2, s};
use ndarray_npy::write_npy;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One bad invocation.
struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Every one of these must appear in stderr.
    expect: Vec<String>,
}

/// Anything that can be a command-line argument.
trait Arg {
    fn arg(&self) -> String;
}

impl Arg for &str {
    fn arg(&self) -> String {
        self.to_string()
    }
}

impl Arg for String {
    fn arg(&self) -> String {
        self.clone()
    }
}

impl Arg for PathBuf {
    fn arg(&self) -> String {
        self.display().to_string()
    }
}

impl Arg for &Path {
    fn arg(&self) -> String {
        self.display().to_string()
    }
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(Arg::arg(&$a)),*] };
}

/// `base` (subcommand words, then `--flag value` pairs or lone switches)
/// followed by `extra`; a flag given in `extra` replaces the one in `base`.
fn with_extra(base: Vec<String>, extra: &[&str]) -> Vec<String> {
    let mut out = vec![];
    let mut i = 0;
    while i < base.len() {
        let flag = base[i].starts_with("--");
        let n = if flag && base.get(i + 1).is_some_and(|v| !v.starts_with("--")) {
            2
        } else {
            1
        };
        if !(flag && extra.contains(&base[i].as_str())) {
            out.extend_from_slice(&base[i..i + n]);
        }
        i += n;
    }
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

/// The cases, the folder their files live in, and the files no case may
/// change (with their content before the cases ran).
struct Table {
    root: tempfile::TempDir,
    cases: Vec<Case>,
    untouched: Vec<(PathBuf, Vec<u8>)>,
    /// Paths a failing command must not create.
    absent: Vec<PathBuf>,
}

impl Table {
    /// A fresh folder for one case's files.
    fn dir(&self, name: &str) -> PathBuf {
        let d = self.root.path().join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn add(&mut self, name: &'static str, args: Vec<String>, expect: &[&str]) {
        assert!(
            self.cases.iter().all(|c| c.name != name),
            "duplicate case {name}"
        );
        self.cases.push(Case {
            name,
            args,
            expect: expect.iter().map(|s| s.to_string()).collect(),
        });
    }
}

// ---------------------------------------------------------------- IDX

const N_TRAIN: usize = 20;
const N_TEST: usize = 10;
const TI: &str = "train-images-idx3-ubyte";
const TL: &str = "train-labels-idx1-ubyte";

fn pixels(n: usize, side: usize) -> Vec<u8> {
    (0..n * side * side).map(|i| (i * 7 % 251) as u8).collect()
}

fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

fn images(n: usize, side: usize) -> Vec<u8> {
    common::idx_images(&pixels(n, side), n, side, side)
}

/// The four raw IDX files of a tiny valid MNIST-format set of `side`-pixel images.
fn write_idx(dir: &Path, side: usize) {
    for (prefix, n) in [("train", N_TRAIN), ("t10k", N_TEST)] {
        let im = dir.join(format!("{prefix}-images-idx3-ubyte"));
        fs::write(im, images(n, side)).unwrap();
        let lb = dir.join(format!("{prefix}-labels-idx1-ubyte"));
        fs::write(lb, common::idx_labels(&labels(n))).unwrap();
    }
}

/// A quick `symfeat train` on `data`, its run directory in `out`.
fn train_args(dataset: &str, data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let base = args![
        "train",
        "--dataset",
        dataset,
        "--data",
        data,
        "--net",
        "mlp",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--threads",
        "1",
        "--probe",
        "false",
        "--out",
        out,
    ];
    with_extra(base, extra)
}

/// A valid IDX set changed by `mutate`, trained on as `dataset`.
fn idx_case(
    t: &mut Table,
    name: &'static str,
    dataset: &str,
    mutate: impl FnOnce(&Path),
    expect: &[&str],
) {
    let d = t.dir(name);
    write_idx(&d, 28);
    mutate(&d);
    t.add(name, train_args(dataset, &d, &d.join("run"), &[]), expect);
}

fn put(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::write(dir.join(name), bytes).unwrap();
}

#[rustfmt::skip]
fn idx_cases(t: &mut Table) {
    let img_len = (N_TRAIN * 784).to_string();
    idx_case(t, "idx_truncated_images", "mnist",
        |d| put(d, TI, common::idx_images(&pixels(N_TRAIN - 1, 28), N_TRAIN, 28, 28)),
        &[TI, "truncated", &format!("expected {img_len}")]);
    idx_case(t, "idx_truncated_labels", "mnist",
        |d| put(d, TL, &common::idx_labels(&labels(N_TRAIN))[..8 + 15]),
        &[TL, "truncated: 15 bytes of label data", "expected 20"]);
    idx_case(t, "idx_truncated_header", "mnist",
        |d| put(d, TI, &images(1, 28)[..10]),
        &[TI, "10 bytes of header", "expected 16"]);
    idx_case(t, "idx_corrupt_gzip", "mnist",
        |d| {
            // A valid 10-byte gzip header, then a deflate block of the
            // reserved type 3 and noise.
            let mut b = common::gz(&images(N_TRAIN, 28));
            b.truncate(10);
            b.push(0xff);
            b.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
            fs::remove_file(d.join(TI)).unwrap();
            put(d, &format!("{TI}.gz"), b);
        },
        &["train-images-idx3-ubyte.gz", "gzip stream is corrupt"]);
    idx_case(t, "idx_gzip_cut_short", "mnist",
        |d| {
            let b = common::gz(&images(N_TEST, 28));
            fs::remove_file(d.join("t10k-images-idx3-ubyte")).unwrap();
            put(d, "t10k-images-idx3-ubyte.gz", &b[..b.len() / 2]);
        },
        &["t10k-images-idx3-ubyte.gz", "gzip stream is corrupt"]);
    idx_case(t, "idx_images_with_label_magic", "mnist",
        |d| put(d, TI, common::idx_labels(&labels(N_TRAIN))),
        &[TI, "bad magic 0x00000801", "expected 0x00000803"]);
    idx_case(t, "idx_labels_with_3d_magic", "mnist",
        |d| put(d, TL, images(N_TRAIN, 28)),
        &[TL, "bad magic 0x00000803", "expected 0x00000801", "3 dimension"]);
    idx_case(t, "idx_images_with_2d_magic", "mnist",
        |d| {
            let mut b = images(N_TRAIN, 28);
            b[3] = 2;
            put(d, TI, b);
        },
        &[TI, "2 dimension", "expected 0x00000803"]);
    idx_case(t, "idx_float_dtype", "mnist",
        |d| {
            let mut b = images(N_TRAIN, 28);
            b[2] = 0x0D;
            put(d, TI, b);
        },
        &[TI, "f32", "expected 0x00000803"]);
    idx_case(t, "idx_not_idx_at_all", "mnist",
        |d| put(d, TI, b"<html>404 not found</html>"),
        &[TI, "not an IDX magic"]);
    idx_case(t, "idx_count_mismatch", "mnist",
        |d| put(d, TL, common::idx_labels(&labels(N_TRAIN - 1))),
        &[TL, TI, "label count 19", "image count 20"]);
    idx_case(t, "idx_empty_images_file", "mnist",
        |d| put(d, TI, b""),
        &[TI, "0 bytes of header", "expected 16"]);
    idx_case(t, "idx_empty_labels_file", "mnist",
        |d| put(d, "t10k-labels-idx1-ubyte", b""),
        &["t10k-labels-idx1-ubyte", "0 bytes of header", "expected 8"]);
    idx_case(t, "idx_zero_images", "mnist",
        |d| {
            put(d, TI, common::idx_images(&[], 0, 28, 28));
            put(d, TL, common::idx_labels(&[]));
        },
        &[TI, "holds no images", "at least 1"]);
    idx_case(t, "idx_label_out_of_range", "mnist",
        |d| {
            let mut l = labels(N_TRAIN);
            l[3] = 10;
            put(d, TL, common::idx_labels(&l));
        },
        &[TL, "label 10 at index 3", "outside 0..10"]);
    idx_case(t, "idx_label_255_fashion_mnist", "fashion-mnist",
        |d| {
            let mut l = labels(N_TEST);
            l[7] = 255;
            put(d, "t10k-labels-idx1-ubyte", common::idx_labels(&l));
        },
        &["t10k-labels-idx1-ubyte", "label 255 at index 7", "outside 0..10"]);
    idx_case(t, "idx_trailing_bytes", "mnist",
        |d| put(d, TI, [images(N_TRAIN, 28), b"junk!".to_vec()].concat()),
        &[TI, "trailing bytes", &format!("{img_len} bytes")]);
    idx_case(t, "idx_zero_columns", "mnist",
        |d| put(d, TI, common::idx_images(&[], N_TRAIN, 28, 0)),
        &[TI, "cols is 0", "at least 1"]);
    let huge = (u128::from(u32::MAX) * 784).to_string();
    idx_case(t, "idx_huge_count_in_header", "mnist",
        |d| {
            let mut b = images(N_TRAIN, 28);
            b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
            put(d, TI, b);
        },
        &[TI, "truncated", &format!("expected {huge}")]);
    idx_case(t, "idx_missing_test_labels", "mnist",
        |d| fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap(),
        &["t10k-labels-idx1-ubyte not found", "t10k-labels-idx1-ubyte.gz"]);
    idx_case(t, "idx_train_test_size_mismatch", "mnist",
        |d| put(d, "t10k-images-idx3-ubyte", images(N_TEST, 20)),
        &["28x28", "20x20", "t10k-images-idx3-ubyte", "differs"]);

    let d = t.dir("idx_images_too_small_for_cnn");
    write_idx(&d, 3);
    t.add("idx_images_too_small_for_cnn", train_args("mnist", &d, &d.join("run"), &["--net", "cnn"]),
        &["net", "at least 4x4", "3x3"]);
    let out = t.dir("data_elsewhere").join("run");
    let missing = t.root.path().join("no-such-folder");
    t.add("data_folder_missing", train_args("mnist", &missing, &out, &[]),
        &["no-such-folder", "data folder does not exist"]);
    let d = t.dir("data_folder_is_a_file");
    put(&d, "file", b"x");
    t.add("data_folder_is_a_file", train_args("mnist", &d.join("file"), &out, &[]),
        &["data_folder_is_a_file/file", "not a folder"]);
    t.add("mnist_without_data", args!["train", "--dataset", "mnist", "--out", out],
        &["mnist", "`--data DIR` is required", "t10k-images-idx3-ubyte"]);
}

// ---------------------------------------------------------------- CIFAR

/// CIFAR records `(coarse, fine)`; the coarse byte only for CIFAR-100.
fn cifar_records(labels: &[(u8, u8)], cifar100: bool) -> Vec<u8> {
    let mut v = vec![];
    for (i, &(coarse, fine)) in labels.iter().enumerate() {
        if cifar100 {
            v.push(coarse);
        }
        v.push(fine);
        v.extend((0..3072).map(|k| ((k + i * 13) % 256) as u8));
    }
    v
}

fn cifar_case(
    t: &mut Table,
    name: &'static str,
    dataset: &str,
    mutate: impl FnOnce(&Path),
    expect: &[&str],
) {
    let d = t.dir(name);
    if dataset == "cifar100" {
        put(&d, "train.bin", cifar_records(&[(1, 42), (19, 99)], true));
        put(&d, "test.bin", cifar_records(&[(2, 7)], true));
    } else {
        for k in 1..=5u8 {
            put(
                &d,
                &format!("data_batch_{k}.bin"),
                cifar_records(&[(0, k), (0, 9)], false),
            );
        }
        put(
            &d,
            "test_batch.bin",
            cifar_records(&[(0, 3), (0, 4)], false),
        );
    }
    mutate(&d);
    t.add(name, train_args(dataset, &d, &d.join("run"), &[]), expect);
}

#[rustfmt::skip]
fn cifar_cases(t: &mut Table) {
    let short = format!("file length {}", 2 * 3073 - 1);
    cifar_case(t, "cifar_short_record", "cifar10",
        |d| put(d, "data_batch_3.bin", &cifar_records(&[(0, 1), (0, 2)], false)[..2 * 3073 - 1]),
        &["data_batch_3.bin", &short, "not a multiple of the record size 3073"]);
    cifar_case(t, "cifar_label_out_of_range", "cifar10",
        |d| put(d, "data_batch_2.bin", cifar_records(&[(0, 1), (0, 10)], false)),
        &["data_batch_2.bin", "label 10 at index 1", "outside 0..10"]);
    cifar_case(t, "cifar_missing_batch", "cifar10",
        |d| fs::remove_file(d.join("data_batch_5.bin")).unwrap(),
        &["data_batch_5.bin not found", "data_batch_1.bin .. data_batch_5.bin"]);
    cifar_case(t, "cifar_missing_test_batch", "cifar10",
        |d| fs::remove_file(d.join("test_batch.bin")).unwrap(),
        &["test_batch.bin not found"]);
    cifar_case(t, "cifar_gzipped_batch", "cifar10",
        |d| put(d, "data_batch_1.bin", common::gz(&cifar_records(&[(0, 1)], false))),
        &["data_batch_1.bin", "gzip-compressed", "tar xzf"]);
    cifar_case(t, "cifar_empty_test_batch", "cifar10",
        |d| put(d, "test_batch.bin", b""),
        &["test_batch.bin", "holds no records", "at least 1"]);
    cifar_case(t, "cifar100_fine_label_out_of_range", "cifar100",
        |d| put(d, "train.bin", cifar_records(&[(1, 5), (3, 100)], true)),
        &["train.bin", "fine label 100 at index 1", "outside 0..100"]);
    cifar_case(t, "cifar100_coarse_label_out_of_range", "cifar100",
        |d| put(d, "test.bin", cifar_records(&[(20, 5)], true)),
        &["test.bin", "coarse label 20 at index 0", "outside 0..20"]);
    cifar_case(t, "cifar100_given_cifar10_records", "cifar100",
        |d| put(d, "train.bin", cifar_records(&[(0, 1), (0, 2)], false)),
        &["train.bin", "record size 3074", "cifar100"]);
}

// ---------------------------------------------------------------- NPY

const C: usize = 4;
const D: usize = 3;
const N: usize = 16;

/// Valid analysis inputs: class weights `w_c` (C x D, none zero), features
/// `3 w_c` plus a small jitter, labels `i % C`, a zero bias.
struct Npy {
    x: PathBuf,
    y: PathBuf,
    w: PathBuf,
    b: PathBuf,
}

fn weights() -> Array2<f32> {
    let rows = [
        [1.0, 0.0, 0.2],
        [0.0, 1.0, -0.1],
        [-1.0, 0.1, 0.3],
        [0.1, -1.0, -0.2],
    ];
    Array2::from_shape_fn((C, D), |(c, j)| rows[c][j])
}

fn features() -> Array2<f32> {
    let w = weights();
    Array2::from_shape_fn((N, D), |(i, j)| {
        3.0 * w[[i % C, j]] + 0.05 * (((i * 7 + j * 3) % 5) as f32 - 2.0)
    })
}

fn npy_labels() -> Array1<i64> {
    Array1::from_shape_fn(N, |i| (i % C) as i64)
}

fn write_good_npy(dir: &Path) -> Npy {
    let f = Npy {
        x: dir.join("x.npy"),
        y: dir.join("y.npy"),
        w: dir.join("w.npy"),
        b: dir.join("b.npy"),
    };
    write_npy(&f.x, &features()).unwrap();
    write_npy(&f.y, &npy_labels()).unwrap();
    write_npy(&f.w, &weights()).unwrap();
    write_npy(&f.b, &Array1::<f32>::zeros(C)).unwrap();
    f
}

/// Which input a bad file replaces.
#[derive(Clone, Copy)]
enum Role {
    Features,
    Labels,
    Weights,
    Bias,
}

/// A bad file's content.
enum Bad {
    F32(Array2<f32>),
    F32Vec(Array1<f32>),
    I32(Array2<i32>),
    Labels(Array1<i64>),
    Bytes(Vec<u8>),
}

impl Bad {
    fn write(&self, p: &Path) {
        match self {
            Bad::F32(a) => write_npy(p, a).unwrap(),
            Bad::F32Vec(a) => write_npy(p, a).unwrap(),
            Bad::I32(a) => write_npy(p, a).unwrap(),
            Bad::Labels(a) => write_npy(p, a).unwrap(),
            Bad::Bytes(b) => fs::write(p, b).unwrap(),
        }
    }
}

/// `tool` ("analyze", "heads[:HEAD]", "landscape") on `good` with the
/// `role` file replaced by `bad`.
fn npy_args(tool: &str, good: &Npy, role: Role, bad: &Path, extra: &[&str]) -> Vec<String> {
    let pick = |r: &PathBuf, me: bool| if me { bad.to_path_buf() } else { r.clone() };
    let x = pick(&good.x, matches!(role, Role::Features));
    let y = pick(&good.y, matches!(role, Role::Labels));
    let w = pick(&good.w, matches!(role, Role::Weights));
    let (tool, head) = tool.split_once(':').unwrap_or((tool, "normface"));
    let mut a = match tool {
        "analyze" => args!["analyze", "--features", x, "--labels", y, "--weights", w],
        "heads" => args![
            "heads",
            "eval",
            "--head",
            head,
            "--features",
            x,
            "--labels",
            y,
            "--weights",
            w,
        ],
        "landscape" => args![
            "landscape",
            "--weights",
            w,
            "--class",
            "1",
            "--angles",
            "8",
            "--radii",
            "2",
            "--out",
            bad.with_extension("out"),
        ],
        other => panic!("unknown tool {other}"),
    };
    if matches!(role, Role::Bias) {
        a.extend(args!["--bias", bad]);
    }
    with_extra(a, extra)
}

/// A case whose `role` file is `bad_<role>.npy`; that name is expected in stderr.
#[allow(clippy::too_many_arguments)]
fn npy_case(
    t: &mut Table,
    good: &Npy,
    name: &'static str,
    tool: &str,
    role: Role,
    bad: Bad,
    extra: &[&str],
    expect: &[&str],
) {
    let file = match role {
        Role::Features => "bad_features.npy",
        Role::Labels => "bad_labels.npy",
        Role::Weights => "bad_weights.npy",
        Role::Bias => "bad_bias.npy",
    };
    let p = t.dir(name).join(file);
    bad.write(&p);
    let want = [&[file][..], expect].concat();
    t.add(name, npy_args(tool, good, role, &p, extra), &want);
}

fn features_with(i: usize, j: usize, v: f32) -> Array2<f32> {
    let mut x = features();
    x[[i, j]] = v;
    x
}

fn labels_with(i: usize, v: i64) -> Array1<i64> {
    let mut y = npy_labels();
    y[i] = v;
    y
}

fn weights_with_row(r: usize, v: &[f32]) -> Array2<f32> {
    let mut w = weights();
    w.row_mut(r).assign(&Array1::from_vec(v.to_vec()));
    w
}

fn first_weight_row() -> Array2<f32> {
    weights().slice(s![..1, ..]).to_owned()
}

fn zeros(n: usize) -> Vec<u8> {
    vec![0; n]
}

#[rustfmt::skip]
fn npy_cases(t: &mut Table, g: &Npy) {
    use Role::*;
    let an = "analyze";
    npy_case(t, g, "npy_features_nan", an, Features, Bad::F32(features_with(5, 2, f32::NAN)), &[],
        &["non-finite", "row 5", "column 2"]);
    npy_case(t, g, "npy_features_inf", an, Features, Bad::F32(features_with(7, 1, f32::NEG_INFINITY)), &[],
        &["non-finite value -inf", "row 7"]);
    npy_case(t, g, "npy_weights_nan", an, Weights, Bad::F32(weights_with_row(2, &[f32::NAN, 0.0, 1.0])), &[],
        &["non-finite", "row 2"]);
    npy_case(t, g, "npy_features_int32", an, Features, Bad::I32(Array2::ones((N, D))), &[],
        &["float32 or float64"]);
    npy_case(t, g, "npy_features_complex", an, Features, Bad::Bytes(common::npy_bytes("<c8", false, "(16, 3)", &zeros(8 * N * D))), &[],
        &["float32 or float64"]);
    npy_case(t, g, "npy_features_strings", an, Features, Bad::Bytes(common::npy_bytes("<U1", false, "(16, 3)", &zeros(4 * N * D))), &[],
        &["float32 or float64"]);
    npy_case(t, g, "npy_features_1d", an, Features, Bad::F32Vec(Array1::ones(N)), &[],
        &["expected a 2-D array", "[16]"]);
    npy_case(t, g, "npy_features_3d", an, Features, Bad::Bytes(common::npy_bytes("<f4", false, "(16, 3, 1)", &zeros(4 * N * D))), &[],
        &["expected a 2-D array", "[16, 3, 1]"]);
    npy_case(t, g, "npy_features_fortran_order", an, Features, Bad::Bytes(common::npy_bytes("<f4", true, "(16, 3)", &zeros(4 * N * D))), &[],
        &["Fortran", "C order"]);
    npy_case(t, g, "npy_features_truncated", an, Features, Bad::Bytes(common::npy_bytes("<f4", false, "(16, 3)", &zeros(4 * N * D - 12))), &[],
        &["truncated"]);
    npy_case(t, g, "npy_features_not_npy", an, Features, Bad::Bytes(b"hello, world".to_vec()), &[],
        &["not a valid NPY file"]);
    npy_case(t, g, "npy_features_empty_file", an, Features, Bad::Bytes(vec![]), &[],
        &["not a valid NPY file"]);
    let garbage = [&b"\x93NUMPY\x01\x00\x76\x00"[..], format!("{:<117}\n", "{'descr': <f4 garbage!!}").as_bytes(), &zeros(4 * N * D)].concat();
    npy_case(t, g, "npy_header_garbage", an, Features, Bad::Bytes(garbage), &[],
        &["not a valid NPY file"]);
    npy_case(t, g, "npy_header_longer_than_file", an, Features, Bad::Bytes(b"\x93NUMPY\x01\x00\x60\xea{'descr': '<f4'".to_vec()), &[],
        &["not a valid NPY file"]);
    npy_case(t, g, "npy_weights_huge_shape_in_header", an, Weights, Bad::Bytes(common::npy_bytes("<f4", false, "(1099511627776, 3)", &zeros(4 * C * D))), &[],
        &["truncated"]);
    npy_case(t, g, "npy_features_huge_shape_in_header", "heads", Features, Bad::Bytes(common::npy_bytes("<f4", false, "(3, 1099511627776)", &zeros(4 * N * D))), &[],
        &["truncated"]);
    npy_case(t, g, "npy_count_mismatch", an, Features, Bad::F32(features().slice(s![..15, ..]).to_owned()), &[],
        &["15 rows", "16 labels", "y.npy"]);
    npy_case(t, g, "npy_labels_out_of_range", an, Labels, Bad::Labels(labels_with(3, 9)), &[],
        &["label 9 at index 3", "outside 0..4"]);
    npy_case(t, g, "npy_labels_negative", an, Labels, Bad::Labels(labels_with(2, -1)), &[],
        &["label -1 at index 2", "negative"]);
    npy_case(t, g, "npy_labels_float", an, Labels, Bad::F32Vec(Array1::zeros(N)), &[],
        &["integer"]);
    npy_case(t, g, "npy_labels_2d", an, Labels, Bad::Bytes(common::npy_bytes("<i8", false, "(16, 1)", &zeros(8 * N))), &[],
        &["expected a 1-D array", "[16, 1]"]);
    let huge: Vec<u8> = (0..N as u64).flat_map(|i| if i == 4 { u64::MAX } else { i % C as u64 }.to_le_bytes()).collect();
    npy_case(t, g, "npy_labels_uint64_beyond_int64", an, Labels, Bad::Bytes(common::npy_bytes("<u8", false, "(16,)", &huge)), &[],
        &["18446744073709551615", "index 4"]);
    npy_case(t, g, "npy_feature_weight_d_mismatch", an, Features, Bad::F32(Array2::ones((N, 5))), &[],
        &["D = 5", "D = 3", "w.npy"]);
    npy_case(t, g, "npy_class_without_sample", an, Labels, Bad::Labels(Array1::from_shape_fn(N, |i| (i % 3) as i64)), &[],
        &["class 3 has no sample"]);
    npy_case(t, g, "npy_zero_weight_row", an, Weights, Bad::F32(weights_with_row(1, &[0.0; 3])), &[],
        &["row 1", "zero"]);
    npy_case(t, g, "npy_one_class", an, Weights, Bad::F32(first_weight_row()), &[],
        &["at least 2 classes"]);
    npy_case(t, g, "npy_zero_columns", an, Weights, Bad::F32(Array2::zeros((C, 0))), &[],
        &["4 x 0", "column"]);
    let mut x = features();
    (1..N).step_by(C).for_each(|i| x.row_mut(i).fill(0.0));
    npy_case(t, g, "npy_class_features_all_zero", an, Features, Bad::F32(x), &[],
        &["class 1", "zero"]);
    npy_case(t, g, "npy_all_features_zero", an, Features, Bad::F32(Array2::zeros((N, D))), &[],
        &["zero"]);
    npy_case(t, g, "npy_all_class_means_equal", an, Features, Bad::F32(Array2::ones((N, D))), &["--scale", "4"],
        &["class means"]);
    npy_case(t, g, "npy_bias_length_mismatch", an, Bias, Bad::F32Vec(Array1::zeros(3)), &[],
        &["3 values", "C = 4"]);
    npy_case(t, g, "npy_bias_is_a_matrix", an, Bias, Bad::F32(Array2::zeros((2, 3))), &[],
        &["expected a vector", "[2, 3]"]);
    npy_case(t, g, "npy_bias_inf", an, Bias, Bad::F32Vec(Array1::from_vec(vec![0.0, f32::INFINITY, 0.0, 0.0])), &[],
        &["non-finite", "index 1"]);

    // Options of `analyze`.
    let d = t.dir("analyze_options");
    let a = |extra: &[&str]| with_extra(args!["analyze", "--features", g.x, "--labels", g.y, "--weights", g.w], extra);
    let bias = g.b.display().to_string();
    let missing = d.join("missing.npy").display().to_string();
    let folder = d.display().to_string();
    let nowhere = d.join("nowhere").join("a.json").display().to_string();
    put(&d, "plain", b"x");
    let under_file = d.join("plain").join("a.json").display().to_string();
    t.add("analyze_scale_zero", a(&["--scale", "0"]), &["--scale 0", "> 0"]);
    t.add("analyze_scale_negative", a(&["--scale", "-1"]), &["--scale -1", "> 0"]);
    t.add("analyze_scale_negative_exponent", a(&["--scale", "-1e-3"]), &["--scale -0.001", "> 0"]);
    t.add("analyze_scale_nan", a(&["--scale", "NaN"]), &["--scale NaN", "finite"]);
    t.add("analyze_scale_inf", a(&["--scale", "inf"]), &["--scale inf", "finite"]);
    t.add("analyze_scale_not_a_number", a(&["--scale", "big"]), &["--scale", "invalid value 'big'"]);
    t.add("analyze_scale_and_bias", a(&["--scale", "16", "--bias", &bias]), &["--scale", "--bias", "exclude each other"]);
    t.add("analyze_missing_features_file", a(&["--features", &missing]), &["missing.npy", "cannot open"]);
    t.add("analyze_features_is_a_folder", a(&["--features", &folder]), &["analyze_options", "not a valid NPY file"]);
    t.add("analyze_json_into_missing_folder", a(&["--json", &nowhere]), &["cannot write", "nowhere/a.json"]);
    t.add("analyze_json_under_a_file", a(&["--json", &under_file]), &["cannot write", "plain/a.json"]);
}

// ---------------------------------------------------------------- heads eval

#[rustfmt::skip]
fn heads_cases(t: &mut Table, g: &Npy) {
    use Role::*;
    let eval = |head: &str, params: &[&str], extra: &[&str]| {
        let mut v = args!["heads", "eval", "--head", head, "--features", g.x, "--labels", g.y, "--weights", g.w];
        params.iter().for_each(|p| v.extend(args!["--param", *p]));
        with_extra(v, extra)
    };
    t.add("heads_unknown_head", eval("arcfce", &[], &[]), &["--head \"arcfce\"", "expected one of", "arcface"]);
    t.add("heads_s_zero", eval("normface", &["s=0"], &[]), &["--param", "s = 0", "(0, 10000)"]);
    t.add("heads_s_negative", eval("cosface", &["s=-4"], &[]), &["s = -4", "(0, 10000)"]);
    t.add("heads_s_nan", eval("arcface", &["s=NaN"], &[]), &["s = NaN", "finite"]);
    t.add("heads_s_inf", eval("normface", &["s=inf"], &[]), &["s = inf", "finite"]);
    t.add("heads_cosface_m_one", eval("cosface", &["m=1"], &[]), &["m = 1", "[0, 1)"]);
    t.add("heads_arcface_m_too_large", eval("arcface", &["m=2"], &[]), &["m = 2", "[0, pi/2) radians"]);
    t.add("heads_arcface_m_negative", eval("arcface", &["m=-0.1"], &[]), &["m = -0.1", "[0, pi/2) radians"]);
    t.add("heads_sphereface_m_below_one", eval("sphereface", &["m=0.5"], &[]), &["m = 0.5", "integer m in 1..=10"]);
    t.add("heads_sphereface_m_not_integer", eval("sphereface", &["m=2.5"], &[]), &["m = 2.5", "integer m in 1..=10"]);
    t.add("heads_combined_m1_zero", eval("combined", &["m1=0"], &[]), &["m1 = 0", "(0, 10)"]);
    t.add("heads_combined_m3_one", eval("combined", &["m3=1"], &[]), &["m3 = 1", "[0, 1)"]);
    t.add("heads_unknown_param", eval("normface", &["margin=0.2"], &[]), &["no parameter \"margin\"", "it takes: s"]);
    t.add("heads_malformed_param", eval("normface", &["s16"], &[]), &["--param \"s16\"", "NAME=VALUE"]);
    t.add("heads_param_not_a_number", eval("normface", &["s=big"], &[]), &["--param \"s=big\"", "\"big\" is not a number"]);
    t.add("heads_flag_param_not_0_or_1", eval("arcface", &["easy_margin=2"], &[]), &["easy_margin = 2", "0 or 1"]);
    t.add("heads_softmax_without_bias", eval("softmax", &[], &[]), &["--bias b.npy is required"]);
    let bias = g.b.display().to_string();
    t.add("heads_bias_on_a_cosine_head", eval("normface", &[], &["--bias", &bias]), &["--bias", "softmax head only"]);
    t.add("heads_fixed_head", eval("polygon", &[], &[]), &["fixed classifiers build their own weights", "normface"]);
    t.add("heads_symmetrical_c_x_d_weights", eval("symmetrical", &[], &["--classes", "4"]),
        &["w.npy", "2 x D parameters (v1, v2)", "got 4 rows"]);
    let d = t.dir("heads_symmetrical");
    let (v, x1, v1) = (d.join("v.npy"), d.join("x_d1.npy"), d.join("v_d1.npy"));
    write_npy(&v, &weights().slice(s![..2, ..]).to_owned()).unwrap();
    write_npy(&x1, &Array2::<f32>::ones((N, 1))).unwrap();
    write_npy(&v1, &Array2::<f32>::ones((2, 1))).unwrap();
    let (v, x1, v1) = (v.display().to_string(), x1.display().to_string(), v1.display().to_string());
    t.add("heads_symmetrical_without_classes", eval("symmetrical", &[], &["--weights", &v]), &["--classes C is required"]);
    t.add("heads_symmetrical_one_class", eval("symmetrical", &[], &["--weights", &v, "--classes", "1"]), &["--classes 1", "at least 2"]);
    t.add("heads_symmetrical_d1", eval("symmetrical", &[], &["--features", &x1, "--weights", &v1, "--classes", "4"]),
        &["--head symmetrical", "x_d1.npy", "D = 1", "D >= 2"]);
    let h = "heads";
    npy_case(t, g, "heads_one_class_weights", h, Weights, Bad::F32(first_weight_row()), &[],
        &["C >= 2"]);
    npy_case(t, g, "heads_bias_length_mismatch", "heads:softmax", Bias, Bad::F32Vec(Array1::zeros(5)), &[],
        &["--bias", "5 values", "C = 4"]);
    npy_case(t, g, "heads_features_nan", h, Features, Bad::F32(features_with(0, 0, f32::NAN)), &[],
        &["non-finite", "row 0"]);
    npy_case(t, g, "heads_weights_int64", h, Weights, Bad::Bytes(common::npy_bytes("<i8", false, "(4, 3)", &zeros(8 * C * D))), &[],
        &["float32 or float64"]);
    npy_case(t, g, "heads_labels_negative", h, Labels, Bad::Labels(labels_with(0, -3)), &[],
        &["label -3 at index 0", "negative"]);
    npy_case(t, g, "heads_features_no_rows", h, Features, Bad::F32(Array2::zeros((0, D))), &[],
        &["bad_features.npy", "at least one row and one column", "0 x 3"]);
    t.add("heads_symmetrical_too_many_classes", eval("symmetrical", &[], &["--weights", &v, "--classes", "10000000000"]),
        &["more than 2^32 values", "in batches"]);
    npy_case(t, g, "heads_labels_out_of_range", h, Labels, Bad::Labels(labels_with(9, 4)), &[],
        &["label 4 at index 9", "outside 0..4"]);
    npy_case(t, g, "heads_feature_weight_d_mismatch", h, Weights, Bad::F32(Array2::ones((C, 2))), &[],
        &["D = 2", "D = 3"]);
    npy_case(t, g, "heads_count_mismatch", h, Labels, Bad::Labels(Array1::from_shape_fn(N + 1, |i| (i % C) as i64)), &[],
        &["16 rows", "17 labels"]);
    let nowhere = d.join("nowhere").join("l.npy").display().to_string();
    t.add("heads_logits_out_into_missing_folder", eval("normface", &[], &["--logits-out", &nowhere]),
        &["cannot write", "nowhere/l.npy"]);
}

// ---------------------------------------------------------------- landscape

#[rustfmt::skip]
fn landscape_cases(t: &mut Table, g: &Npy) {
    use Role::*;
    let d = t.dir("landscape");
    let out = d.join("out");
    let land = |extra: &[&str]| with_extra(
        args!["landscape", "--weights", g.w, "--class", "1", "--angles", "8", "--radii", "2", "--out", out],
        extra,
    );
    let l = "landscape";
    npy_case(t, g, "landscape_weights_nan", l, Weights, Bad::F32(weights_with_row(3, &[0.0, f32::NAN, 1.0])), &[],
        &["non-finite"]);
    npy_case(t, g, "landscape_weights_1d", l, Weights, Bad::F32Vec(Array1::ones(3)), &[],
        &["expected a 2-D array"]);
    npy_case(t, g, "landscape_one_class", l, Weights, Bad::F32(first_weight_row()), &[],
        &["at least 2 classes"]);
    npy_case(t, g, "landscape_class_weight_zero", l, Weights, Bad::F32(weights_with_row(1, &[0.0; 3])), &[],
        &["w_1 is zero"]);
    npy_case(t, g, "landscape_towards_weight_zero", l, Weights, Bad::F32(weights_with_row(2, &[0.0; 3])), &["--towards", "2"],
        &["w_2 is zero", "--towards"]);
    npy_case(t, g, "landscape_towards_parallel", l, Weights, Bad::F32(weights_with_row(3, &[0.0, 2.0, -0.2])), &["--towards", "3"],
        &["parallel", "--towards"]);
    npy_case(t, g, "landscape_bias_length_mismatch", l, Bias, Bad::F32Vec(Array1::zeros(2)), &[],
        &["--bias", "2 values", "C = 4"]);
    put(&d, "plain", b"x");
    let blocked = d.join("plain").join("out").display().to_string();
    t.add("landscape_class_out_of_range", land(&["--class", "4"]), &["--class 4", "0..4", "w.npy"]);
    t.add("landscape_towards_same_class", land(&["--towards", "1"]), &["--towards 1", "another class"]);
    t.add("landscape_scale_zero", land(&["--scale", "0"]), &["--scale 0", "> 0"]);
    t.add("landscape_scale_negative", land(&["--scale", "-2"]), &["--scale -2", "> 0"]);
    t.add("landscape_scale_nan", land(&["--scale", "nan"]), &["--scale NaN", "finite"]);
    t.add("landscape_r_max_negative", land(&["--r-max", "-1"]), &["--r-max -1", "> 0"]);
    t.add("landscape_radii_zero", land(&["--radii", "0"]), &["--radii", ">= 1"]);
    t.add("landscape_out_under_a_file", land(&["--out", &blocked]), &["cannot create output directory", "plain/out"]);
}

// ---------------------------------------------------------------- train

#[rustfmt::skip]
fn train_cases(t: &mut Table) {
    let data = t.dir("train_data");
    write_idx(&data, 28);
    let run = |t: &Table, name: &str, extra: &[&str]| {
        train_args("mnist", &data, &t.root.path().join(name).join("run"), extra)
    };
    let cases: &[(&'static str, &[&str], &[&str])] = &[
        ("train_unknown_head", &["--head", "arcfce"], &["head \"arcfce\"", "expected one of"]),
        ("train_unknown_net", &["--net", "vgg"], &["net \"vgg\"", "expected one of", "mlp"]),
        ("train_unknown_dataset", &["--dataset", "imagenet"], &["dataset \"imagenet\"", "cifar10"]),
        ("train_head_param_malformed", &["--head-param", "s16"], &["--head-param \"s16\"", "NAME=VALUE"]),
        ("train_head_param_s_zero", &["--head", "symmetrical", "--head-param", "s=0"], &["s = 0", "(0, 10000)"]),
        ("train_head_param_s_nan", &["--head", "normface", "--head-param", "s=nan"], &["s = NaN", "finite"]),
        ("train_cosface_m_one", &["--head", "cosface", "--head-param", "m=1"], &["m = 1", "[0, 1)"]),
        ("train_arcface_m_out_of_range", &["--head", "arcface", "--head-param", "m=1.6"], &["m = 1.6", "[0, pi/2)"]),
        ("train_sphereface_m_zero", &["--head", "sphereface", "--head-param", "m=0"], &["m = 0", "integer m in 1..=10"]),
        ("train_combined_m1_negative", &["--head", "combined", "--head-param", "m1=-1"], &["m1 = -1", "(0, 10)"]),
        ("train_softmax_takes_no_param", &["--head-param", "s=16"], &["no parameter \"s\"", "it takes: none"]),
        ("train_symmetrical_p_max_below_uniform", &["--head", "symmetrical", "--head-param", "p_max=0.05"], &["p_max = 0.05", "1/C"]),
        ("train_symmetrical_feature_dim_1", &["--net", "lenet", "--feature-dim", "1", "--head", "symmetrical"],
            &["--head symmetrical", "--feature-dim", "D = 1", "D >= 2"]),
        ("train_polygon_feature_dim_1", &["--net", "lenet", "--feature-dim", "1", "--head", "polygon"],
            &["--head polygon", "--feature-dim", "D >= 2"]),
        ("train_simplex_d_below_c", &["--net", "lenet", "--feature-dim", "2", "--head", "simplex"], &["--head simplex", "D >= C", "C = 10"]),
        ("train_feature_dim_zero", &["--net", "lenet", "--feature-dim", "0"], &["--feature-dim", "at least 1"]),
        ("train_epochs_zero", &["--epochs", "0"], &["epochs", "at least 1"]),
        ("train_epochs_negative", &["--epochs", "-1"], &["--epochs", "invalid value '-1'"]),
        ("train_batch_zero", &["--batch", "0"], &["batch", "at least 1"]),
        ("train_eval_batch_zero", &["--eval-batch", "0"], &["eval-batch", "at least 1"]),
        ("train_lr_zero", &["--lr", "0"], &["lr = 0", "> 0"]),
        ("train_lr_negative", &["--lr", "-0.1"], &["lr = -0.1", "> 0"]),
        ("train_lr_nan", &["--lr", "NaN"], &["lr = NaN", "finite"]),
        ("train_lr_not_a_number", &["--lr", "fast"], &["--lr", "invalid value 'fast'"]),
        ("train_momentum_one", &["--momentum", "1"], &["momentum = 1", "[0, 1)"]),
        ("train_weight_decay_negative", &["--weight-decay", "-1e-4"], &["weight-decay = -0.0001", ">= 0"]),
        ("train_gamma_zero", &["--gamma", "0"], &["gamma = 0", "> 0"]),
        ("train_nesterov_without_momentum", &["--nesterov", "--momentum", "0"], &["nesterov", "momentum > 0"]),
        ("train_unknown_schedule", &["--schedule", "linear"], &["schedule \"linear\"", "const, cosine or multistep"]),
        ("train_multistep_without_milestones", &["--schedule", "multistep"], &["milestones"]),
        ("train_warmup_not_below_epochs", &["--warmup-epochs", "1"], &["warmup-epochs = 1", "smaller than epochs = 1"]),
        ("train_unknown_normalize", &["--normalize", "unit"], &["normalize \"unit\"", "dataset or half"]),
        ("train_threads_zero", &["--threads", "0"], &["threads", "at least 1"]),
        ("train_train_limit_zero", &["--train-limit", "0"], &["train-limit", "at least 1"]),
        ("train_unknown_device", &["--device", "tpu"], &["--device \"tpu\"", "cpu, cuda, cuda:N, vulkan, vulkan:N, vulkan:cpu or libtorch"]),
        ("train_augment_not_bool", &["--augment", "yes"], &["--augment", "invalid value 'yes'"]),
        ("train_resume_without_checkpoint", &["--resume"], &["--resume", "no checkpoint", "without --resume"]),
        ("train_unknown_feature_act", &["--feature-act", "tanh"], &["feature-act \"tanh\"", "relu, linear, bn"]),
        ("train_unknown_regularizer", &["--regularizer", "lasso"], &["regularizer \"lasso\"", "none, l1 or compressibility"]),
        ("train_reg_weight_negative", &["--regularizer", "l1", "--reg-weight", "-1"], &["reg-weight = -1", ">= 0"]),
        ("train_reg_weight_nan", &["--regularizer", "compressibility", "--reg-weight", "NaN"], &["reg-weight = NaN", "finite"]),
        ("train_reg_weight_without_regularizer", &["--reg-weight", "0.1"], &["reg-weight = 0.1", "without a regularizer"]),
        ("train_plateau_window_two", &["--plateau-window", "2"], &["plateau-window = 2", "at least 3"]),
        ("train_plateau_slope_negative", &["--plateau-slope", "-0.1"], &["plateau-slope = -0.1", ">= 0"]),
        ("train_plateau_slope_nan", &["--plateau-slope", "NaN"], &["plateau-slope = NaN", "finite"]),
        ("train_plateau_anneal_negative", &["--plateau-anneal-epochs", "-1"], &["--plateau-anneal-epochs", "invalid value '-1'"]),
        ("train_symmetrical_unknown_init", &["--head", "symmetrical", "--head-param", "init=xavier"], &["--head-param \"init=xavier\"", "uniform/normal"]),
        ("train_symmetrical_init_two", &["--head", "symmetrical", "--head-param", "init=2"], &["init = 2", "0 or 1"]),
        ("train_sphereface_lambda_with_anneal", &["--head", "sphereface", "--head-param", "lambda=0", "--head-param", "anneal=true"],
            &["lambda = 0", "anneal = 1", "contradict"]),
        ("train_binary_unknown", &["--binary", "xnor"], &["binary \"xnor\"", "none, sign, recu"]),
        ("train_binary_lenet", &["--net", "lenet", "--binary", "recu"], &["binary = recu", "not defined for net lenet"]),
        ("train_tau_min_too_low", &["--binary", "recu", "--tau-min", "0.4"], &["tau-min = 0.4", "(0.5, 1)"]),
        ("train_tau_max_one", &["--binary", "recu", "--tau-max", "1"], &["tau-max = 1", "(0.5, 1)"]),
        ("train_tau_max_nan", &["--binary", "recu", "--tau-max", "NaN"], &["tau-max = NaN", "(0.5, 1)"]),
        ("train_tau_min_above_max", &["--binary", "recu", "--tau-min", "0.95", "--tau-max", "0.9"], &["tau-min = 0.95 > tau-max = 0.9"]),
        ("train_tau_without_binary", &["--tau-min", "0.9"], &["tau-min/tau-max without a binary net", "--binary"]),
        ("train_binary_with_regularizer", &["--binary", "sign", "--regularizer", "l1"], &["binary = sign with regularizer l1"]),
    ];
    // Options checked before anything is written: no run directory appears.
    for name in ["train_unknown_feature_act", "train_unknown_regularizer", "train_reg_weight_negative",
                 "train_plateau_window_two", "train_plateau_slope_negative",
                 "train_symmetrical_unknown_init", "train_sphereface_lambda_with_anneal",
                 "train_binary_unknown", "train_binary_lenet", "train_tau_min_too_low", "train_tau_max_one",
                 "train_tau_max_nan", "train_tau_min_above_max", "train_tau_without_binary",
                 "train_binary_with_regularizer"] {
        t.absent.push(t.root.path().join(name));
    }
    for &(name, extra, expect) in cases {
        let a = run(t, name, extra);
        t.add(name, a, expect);
    }
    let d = t.dir("train_out");
    put(&d, "plain", b"x");
    let blocked = d.join("plain").join("run").display().to_string();
    t.add("train_out_under_a_file", run(t, "train_out", &["--out", &blocked]), &["cannot create output directory", "plain/run"]);

    // A finished one-epoch run, then what must not touch it.
    let o = Command::new(env!("CARGO_BIN_EXE_symfeat")).args(run(t, "train_done", &[])).output().unwrap();
    assert!(o.status.success(), "setup run: {}", String::from_utf8_lossy(&o.stderr));
    let done = t.root.path().join("train_done").join("run");
    // A failed resume must leave the run as it was (config.toml included).
    for f in ["config.toml", "checkpoint.bin", "metrics.jsonl", "model.safetensors"] {
        let p = done.join(f);
        let bytes = fs::read(&p).unwrap();
        t.untouched.push((p, bytes));
    }
    let cfg = done.join("config.toml").display().to_string();
    let resume = |extra: &[&str]| with_extra(args!["train", "--config", cfg, "--resume", "--epochs", "2"], extra);
    let small = t.dir("train_small_images");
    write_idx(&small, 20);
    let small = small.display().to_string();
    t.add("train_existing_run_without_resume", run(t, "train_done", &[]), &["already holds a run", "--resume", "another --out"]);
    // quantize on a real trained run: files --load cannot use, and bad threads; nothing is written.
    let done_s = done.display().to_string();
    t.add("quantize_load_not_safetensors_file", args!["quantize", done_s, "--load", cfg],
        &["config.toml", "not a safetensors file"]);
    t.add("quantize_load_missing_file", args!["quantize", done_s, "--load", done.join("nope.safetensors")],
        &["cannot read", "nope.safetensors"]);
    t.add("quantize_load_plain_model", args!["quantize", done_s, "--load", done.join("model.safetensors")],
        &["model.safetensors", "symfeat_levels", "quantize --save"]);
    t.add("quantize_threads_zero", args!["quantize", done_s, "--threads", "0"], &["--threads 0", "at least 1"]);
    t.absent.push(done.join("quantize"));
    t.add("train_resume_other_net", resume(&["--net", "cnn"]),
        &["checkpoint.bin", "does not fit", "net = \"mlp\" in the checkpoint, \"cnn\" now"]);
    t.add("train_resume_other_head", resume(&["--head", "normface"]),
        &["checkpoint.bin", "does not fit", "head = \"softmax\" in the checkpoint, \"normface\" now"]);
    t.add("train_resume_other_image_size", resume(&["--data", &small]),
        &["checkpoint.bin", "does not fit", "[784, 256] in the checkpoint, [400, 256] here"]);
    t.add("train_resume_other_seed", resume(&["--seed", "7"]), &["checkpoint.bin", "seed 0", "seed 7", "--seed 0"]);
    let corrupt = t.dir("train_corrupt_checkpoint/run");
    let ck = fs::read(done.join("checkpoint.bin")).unwrap();
    put(&corrupt, "checkpoint.bin", &ck[..ck.len() / 2]);
    t.add("train_resume_truncated_checkpoint", run(t, "train_corrupt_checkpoint", &["--resume"]),
        &["checkpoint.bin", "unusable", "checksum mismatch"]);
    // prune on the finished run: bad options, targets it cannot reach, and
    // directories it must not write; the base run stays as it was (checked
    // with the files above) and no output directory appears.
    let pout = t.root.path().join("prune_out");
    let pout_s = pout.display().to_string();
    let prune = |extra: &[&str]| with_extra(args!["prune", done_s, "--out", pout_s], extra);
    for (name, extra, expect) in [
        ("prune_target_zero", &["--target-flops", "0"][..], &["--target-flops/--target-params 0", "(0, 1]"][..]),
        ("prune_target_above_one", &["--target-flops", "1.5"], &["1.5", "(0, 1]"]),
        ("prune_target_params_negative", &["--target-params=-0.2"], &["-0.2", "(0, 1]"]),
        ("prune_no_target", &[], &["--target-flops or --target-params"]),
        ("prune_both_targets", &["--target-flops", "0.5", "--target-params", "0.5"], &["--target-flops", "cannot be used with"]),
        ("prune_unknown_criterion", &["--target-flops", "0.5", "--criterion", "magic"], &["--criterion \"magic\"", "taylor-fo-bn"]),
        ("prune_finetune_zero", &["--target-flops", "0.5", "--finetune-epochs", "0"], &["--finetune-epochs 0", "at least 1"]),
        ("prune_units_zero", &["--target-flops", "0.5", "--prune-units", "0"], &["--prune-units 0", "at least 1 unit"]),
        ("prune_every_zero", &["--target-flops", "0.5", "--prune-every", "0"], &["--prune-every 0", "at least 1 minibatch"]),
        ("prune_score_mix_one", &["--target-flops", "0.5", "--score-mix", "1"], &["--score-mix 1", "[0, 1)"]),
        ("prune_lr_negative", &["--target-flops", "0.5", "--lr=-1"], &["--lr -1", "positive"]),
        ("prune_lr_nan", &["--target-flops", "0.5", "--lr", "NaN"], &["--lr NaN", "positive"]),
        ("prune_momentum_one", &["--target-flops", "0.5", "--momentum", "1"], &["--momentum 1", "[0, 1)"]),
        ("prune_oracle_batches_zero", &["--target-flops", "0.5", "--oracle", "4", "--oracle-batches", "0"], &["--oracle-batches 0", "at least 1"]),
        ("prune_bench_batch_zero", &["--target-flops", "0.5", "--bench-batch", "0"], &["--bench-batch 0", "at least 1"]),
        ("prune_threads_zero", &["--target-flops", "0.5", "--threads", "0"], &["--threads 0", "at least 1"]),
        ("prune_unreachable_target", &["--target-flops", "0.001", "--prune-every", "1", "--prune-units", "64", "--threads", "1"],
            &["target 0.001 cannot be reached", "one unit"]),
    ] {
        t.add(name, prune(extra), expect);
    }
    t.absent.push(pout);
    t.add("prune_out_is_the_base", args!["prune", done_s, "--out", done_s, "--target-flops", "0.5"],
        &["--out", "never written"]);
    let not_run = t.dir("prune_not_a_run");
    t.add("prune_not_a_run", args!["prune", not_run, "--out", not_run.join("p"), "--target-flops", "0.5"],
        &["not a run directory", "config.toml"]);
    t.absent.push(not_run.join("p"));
    let no_model = t.dir("prune_no_model");
    fs::copy(done.join("config.toml"), no_model.join("config.toml")).unwrap();
    t.add("prune_run_without_model", args!["prune", no_model, "--out", no_model.join("p"), "--target-flops", "0.5"],
        &["no checkpoint.bin", "train it first"]);
    t.absent.push(no_model.join("p"));
    t.add("bench_run_not_a_run", args!["bench", "--run", not_run], &["not a run directory"]);
    t.add("bench_run_with_model", args!["bench", "--run", done_s, "--model", "cnn"], &["--run", "cannot be used with"]);
    t.add("bench_run_batch_zero", args!["bench", "--run", done_s, "--batch", "0"], &["--batch", "at least 1"]);
    t.add("bench_packed_not_binary", args!["bench", "--run", done_s, "--packed"], &["--packed", "not a binary run", "--binary"]);
    t.add("bench_packed_without_run", args!["bench", "--packed"], &["--run"]);
    // A finished binary run: what it cannot be given.
    let o = Command::new(env!("CARGO_BIN_EXE_symfeat"))
        .args(run(t, "train_binary_done", &["--binary", "sign", "--net", "mlp"])).output().unwrap();
    assert!(o.status.success(), "setup binary run: {}", String::from_utf8_lossy(&o.stderr));
    let bin = t.root.path().join("train_binary_done").join("run");
    let bin_s = bin.display().to_string();
    t.add("prune_binary_run", args!["prune", bin_s, "--out", t.root.path().join("bin_prune"), "--target-flops", "0.5"],
        &["binary run", "cannot be pruned"]);
    t.absent.push(t.root.path().join("bin_prune"));
    t.add("quantize_binary_run", args!["quantize", bin_s], &["binary run", "quantize float runs"]);
    t.absent.push(bin.join("quantize"));
    t.add("train_resume_other_binary", resume(&["--binary", "sign"]),
        &["checkpoint.bin", "does not fit", "binary = \"none\" in the checkpoint, \"sign\" now"]);
    t.add("bench_unknown_model", args!["bench", "--model", "vgg"], &["--model \"vgg\"", "cnn or resnet20"]);
    t.add("bench_batch_zero", args!["bench", "--batch", "0"], &["--batch", "at least 1"]);
    if !cfg!(feature = "tch") {
        t.add("bench_libtorch_without_the_feature", args!["bench", "--device", "libtorch"],
            &["--device libtorch", "without the libtorch backend", "--features tch"]);
    }
    if !cfg!(feature = "vulkan") {
        t.add("bench_vulkan_without_the_feature", args!["bench", "--device", "vulkan"],
            &["--device vulkan", "without the Vulkan backend", "--features vulkan"]);
    }
    t.add("bench_vulkan_bad_index", args!["bench", "--device", "vulkan:x"],
        &["--device \"vulkan:x\"", "vulkan:N, vulkan:cpu"]);
}

// ---------------------------------------------------------------- config files

#[rustfmt::skip]
fn config_cases(t: &mut Table) {
    let d = t.dir("config");
    let out = d.join("run").display().to_string();
    let file = |name: &str, text: &[u8]| {
        put(&d, name, text);
        d.join(name).display().to_string()
    };
    let cases: Vec<(&'static str, String, &[&str])> = vec![
        ("config_unknown_key", file("unknown.toml", b"epochs = 2\nlearning_rate = 0.1\n"), &["unknown.toml", "learning_rate", "expected one of"]),
        ("config_wrong_type", file("type.toml", b"epochs = \"two\"\n"), &["type.toml", "epochs", "expected usize"]),
        ("config_malformed_toml", file("malformed.toml", b"epochs = \n[train\n"), &["malformed.toml", "TOML parse error", "line 1"]),
        ("config_negative_epochs", file("negative.toml", b"epochs = -1\n"), &["negative.toml", "epochs", "expected usize"]),
        ("config_zero_epochs", file("zero.toml", b"epochs = 0\n"), &["epochs", "at least 1"]),
        ("config_lr_nan", file("nan.toml", b"lr = nan\n"), &["lr = NaN", "finite"]),
        ("config_head_param_wrong_type", file("hp.toml", b"head = \"normface\"\n[head_params]\ns = \"big\"\n"), &["hp.toml", "head parameter s", "\"big\" is not a number"]),
        ("config_not_utf8", file("latin1.toml", b"net = \"\xe9t\xe9\"\n"), &["latin1.toml", "UTF-8"]),
        ("config_missing_file", d.join("missing.toml").display().to_string(), &["cannot read config file", "missing.toml"]),
        ("config_is_a_folder", d.display().to_string(), &["cannot read config file", "Is a directory"]),
    ];
    for (name, path, expect) in cases {
        t.add(name, args!["train", "--config", path, "--out", out], expect);
    }
}

// ---------------------------------------------------------------- studies and reports

#[rustfmt::skip]
fn study_cases(t: &mut Table) {
    let data = t.dir("study_data");
    write_idx(&data, 28);
    let d = t.dir("study");
    let train = format!("[train]\ndataset = \"mnist\"\ndata = {:?}\nnet = \"mlp\"\nepochs = 1\nthreads = 1\n", data.display().to_string());
    let grid = "heads = [\"softmax\"]\nseeds = [0]\n";
    let study = |name: &str, text: &str| {
        put(&d, name, text);
        d.join(name).display().to_string()
    };
    let cases: Vec<(&'static str, String, &[&str])> = vec![
        ("study_missing_file", d.join("missing.toml").display().to_string(), &["cannot read study file", "missing.toml"]),
        ("study_unknown_key", study("unknown.toml", &format!("{grid}epochs = 3\n{train}")), &["unknown.toml", "epochs", "expected one of"]),
        ("study_unknown_train_key", study("train_key.toml", &format!("{grid}{train}learning_rate = 1\n")), &["train_key.toml", "learning_rate"]),
        ("study_malformed_toml", study("malformed.toml", "heads = [\"softmax\"\n"), &["malformed.toml", "TOML parse error"]),
        ("study_missing_seeds", study("no_seeds.toml", &format!("heads = [\"softmax\"]\n{train}")), &["no_seeds.toml", "seeds"]),
        ("study_seeds_wrong_type", study("seeds.toml", &format!("heads = [\"softmax\"]\nseeds = [\"a\"]\n{train}")), &["seeds.toml", "seeds", "expected u64"]),
        ("study_empty_heads", study("empty.toml", &format!("heads = []\nseeds = [0]\n{train}")), &["empty.toml", "at least one head"]),
        ("study_unknown_head", study("head.toml", &format!("heads = [\"nope\"]\nseeds = [0]\n{train}")), &["head.toml", "head \"nope\"", "expected one of"]),
        ("study_params_for_absent_head", study("params.toml", &format!("{grid}{train}[head_params.cosface]\ns = 1.0\n")),
            &["params.toml", "head_params.cosface", "not in heads"]),
        ("study_bad_head_param", study("bad_param.toml", &format!("heads = [\"arcface\"]\nseeds = [0]\n{train}[head_params.arcface]\nm = 3.0\n")),
            &["bad_param.toml", "m = 3", "[0, pi/2)"]),
        ("study_zero_epochs", study("zero.toml", &format!("{grid}{}", train.replace("epochs = 1", "epochs = 0"))), &["zero.toml", "epochs", "at least 1"]),
        ("study_unknown_dataset", study("datasets.toml", &format!("{grid}datasets = [\"imagenet\"]\n{train}")), &["datasets.toml", "dataset \"imagenet\""]),
        ("study_variant_unknown_train_key", study("v_key.toml", &format!("{grid}{train}[[variants]]\nname = \"a\"\nhead = \"normface\"\ntrain = {{ feature_actt = \"bn\" }}\n")),
            &["v_key.toml", "variant \"a\"", "feature_actt"]),
        ("study_variant_bad_feature_act", study("v_act.toml", &format!("{grid}{train}[[variants]]\nname = \"a\"\nhead = \"normface\"\ntrain = {{ feature_act = \"tanh\" }}\n")),
            &["v_act.toml", "study run", "feature-act \"tanh\""]),
        ("study_variant_overrides_head", study("v_head.toml", &format!("{grid}{train}[[variants]]\nname = \"a\"\nhead = \"normface\"\ntrain = {{ head = \"softmax\" }}\n")),
            &["v_head.toml", "variant \"a\"", "train.head cannot be overridden"]),
        ("study_variant_duplicate_name", study("v_dup.toml", &format!("{grid}{train}[[variants]]\nname = \"softmax\"\nhead = \"normface\"\n")),
            &["v_dup.toml", "\"softmax\" is used twice"]),
        ("study_variant_bad_name", study("v_name.toml", &format!("{grid}{train}[[variants]]\nname = \"My run\"\nhead = \"normface\"\n")),
            &["v_name.toml", "variant name \"My run\"", "lowercase"]),
        ("study_variant_unknown_head", study("v_unknown.toml", &format!("{grid}{train}[[variants]]\nname = \"a\"\nhead = \"nope\"\n")),
            &["v_unknown.toml", "head \"nope\""]),
        ("study_variant_missing_head", study("v_nohead.toml", &format!("{grid}{train}[[variants]]\nname = \"a\"\n")),
            &["v_nohead.toml", "head"]),
        ("study_variant_bad_init", study("v_init.toml", &format!("{grid}{train}[[variants]]\nname = \"a\"\nhead = \"symmetrical\"\nhead_params = {{ init = \"xavier\" }}\n")),
            &["v_init.toml", "init", "\"xavier\""]),
    ];
    let out = d.join("out").display().to_string();
    for (name, path, expect) in cases {
        t.add(name, args!["study", "--config", path, "--out", out], expect);
    }
    let good = study("good.toml", &format!("{grid}{train}"));
    put(&d, "plain", b"x");
    let blocked = d.join("plain").join("out");
    t.add("study_out_under_a_file", args!["study", "--config", good, "--out", blocked], &["cannot create study directory", "plain/out"]);
    // #19: shards, jobs, the Slurm script and the status of a study.
    let fresh = d.join("never").display().to_string();
    t.add("study_shard_zero", args!["study", "--config", good, "--out", fresh, "--shard", "0/4"], &["--shard \"0/4\"", "1 <= i <= n"]);
    t.add("study_shard_past_n", args!["study", "--config", good, "--out", fresh, "--shard", "5/4"], &["--shard \"5/4\"", "1 <= i <= n"]);
    t.add("study_shard_not_i_of_n", args!["study", "--config", good, "--out", fresh, "--shard", "3"], &["--shard \"3\"", "expected i/n"]);
    t.add("study_jobs_zero", args!["study", "--config", good, "--out", fresh, "--jobs", "0"], &["--jobs 0", "at least 1"]);
    t.add("study_threads_zero", args!["study", "--config", good, "--out", fresh, "--threads", "0"], &["--threads 0", "at least 1"]);
    t.add("study_print_slurm_unwritable_out", args!["study", "--config", good, "--out", d.join("plain").join("slurm"), "--print-slurm"],
        &["cannot create study directory", "plain/slurm"]);
    t.add("study_print_slurm_bad_time", args!["study", "--config", good, "--out", fresh, "--print-slurm", "--slurm-time", "24h"],
        &["--slurm-time \"24h\"", "24:00:00"]);
    t.add("study_print_slurm_zero_tasks", args!["study", "--config", good, "--out", fresh, "--print-slurm", "--slurm-tasks", "0"],
        &["--slurm-tasks 0", "at least 1"]);
    t.add("study_print_slurm_zero_cpus", args!["study", "--config", good, "--out", fresh, "--print-slurm", "--slurm-cpus", "0"],
        &["--slurm-cpus 0", "at least 1"]);
    t.add("study_slurm_option_without_print_slurm", args!["study", "--config", good, "--out", fresh, "--slurm-tasks", "4"],
        &["--print-slurm"]);
    let spaced = t.dir("with space");
    t.add("study_print_slurm_out_with_a_space", args!["study", "--config", good, "--out", spaced.join("s"), "--print-slurm"],
        &["with space", "cannot hold spaces"]);
    t.absent.push(spaced.join("s"));
    t.add("study_status_and_config", args!["study", "--status", fresh, "--config", good], &["--status", "cannot be used with"]);
    let not_a_study = t.dir("status_not_a_study");
    t.add("study_status_not_a_study", args!["study", "--status", not_a_study], &["status_not_a_study", "no study.toml"]);
    t.add("reproduce_jobs_zero", args!["reproduce", "--jobs", "0", "--out", fresh], &["--jobs 0", "at least 1"]);
    t.absent.push(d.join("never"));
    let empty = t.dir("report_not_a_study");
    t.add("report_not_a_study", args!["report", empty], &["report_not_a_study", "no runs/ directory", "no config.toml"]);
    // One run's directory (`symfeat train`, the Python package's Probe): a
    // broken config, or no epoch yet; no report file is written.
    let one = t.dir("report_run_broken_config");
    put(&one, "config.toml", "head = 3\n");
    t.add("report_run_broken_config", args!["report", one], &["report_run_broken_config", "config.toml", "invalid config file"]);
    t.absent.push(one.join("figures"));
    t.absent.push(one.join("report.html"));
    let fresh_run = t.dir("report_run_no_epoch");
    put(&fresh_run, "config.toml", "net = \"mlp\"\n");
    t.add("report_run_no_epoch", args!["report", fresh_run], &["report_run_no_epoch", "no run has finished an epoch"]);
    t.absent.push(fresh_run.join("figures"));
    t.absent.push(fresh_run.join("summary.json"));
    let broken = t.dir("report_broken_metrics");
    let run = broken.join("runs").join("mnist-mlp-softmax-seed0");
    fs::create_dir_all(&run).unwrap();
    put(&run, "config.toml", "net = \"mlp\"\n");
    put(&run, "metrics.jsonl", "{\"epoch\": 1, \"lr\": 0.0");
    t.add("report_truncated_metrics", args!["report", broken], &["metrics.jsonl line 1", "invalid JSON"]);
    // Run directories symfeat did not write: 2-D features whose labels or
    // class weights do not fit them (the scatter figure indexed them unchecked).
    let epoch = "{\"epoch\":1,\"lr\":0.1,\"train_loss\":1.0,\"train_acc\":0.5,\"test_loss\":1.0,\"test_acc\":0.5,\"seconds\":1.0,\"images_per_s\":10.0}\n";
    let foreign = |study: PathBuf, labels: Array1<i64>, weights: Array2<f32>| {
        let run = study.join("runs").join("mnist-lenet-softmax-seed0");
        fs::create_dir_all(&run).unwrap();
        put(&run, "config.toml", "net = \"lenet\"\ndataset = \"mnist\"\n");
        put(&run, "metrics.jsonl", epoch);
        write_npy(run.join("features.npy"), &Array2::<f32>::ones((5, 2))).unwrap();
        write_npy(run.join("labels.npy"), &labels).unwrap();
        write_npy(run.join("class_weights.npy"), &weights).unwrap();
        study
    };
    let w4 = Array2::<f32>::from_shape_fn((4, 2), |(i, j)| (i + j) as f32 + 1.0);
    let d = foreign(t.dir("report_foreign_short_labels"), Array1::from_vec(vec![0, 1, 2]), w4.clone());
    t.add("report_foreign_short_labels", args!["report", d], &["labels.npy", "3 labels", "5 rows", "features.npy"]);
    let d = foreign(t.dir("report_foreign_one_column_weights"), Array1::from_vec(vec![0, 1, 2, 3, 0]), Array2::<f32>::ones((4, 1)));
    t.add("report_foreign_one_column_weights", args!["report", d], &["class_weights.npy", "1 columns", "need 2"]);
    let d = foreign(t.dir("report_foreign_label_outside"), Array1::from_vec(vec![0, 1, 2, 9, 0]), w4);
    t.add("report_foreign_label_outside", args!["report", d], &["labels.npy", "label 9", "outside the 4 classes"]);
    t.add("reproduce_unknown_protocol", args!["reproduce", "--protocol", "full", "--print-config"],
        &["--protocol \"full\"", "quick, long or paper"]);

    // quantize: what is not a trained run, and options out of range; nothing is written.
    let q_empty = t.dir("quantize_not_a_run");
    t.add("quantize_not_a_run", args!["quantize", q_empty], &["quantize_not_a_run", "not a run directory", "config.toml"]);
    let q_nomodel = t.dir("quantize_no_model");
    put(&q_nomodel, "config.toml", "net = \"mlp\"\n");
    t.add("quantize_no_model", args!["quantize", q_nomodel], &["quantize_no_model", "no model", "checkpoint.bin"]);
    t.absent.push(q_nomodel.join("quantize"));
    t.add("quantize_unknown_scheme", args!["quantize", q_nomodel, "--schemes", "linear,log"], &["--schemes \"log\"", "linear or exponential"]);
    t.add("quantize_bits_nine", args!["quantize", q_nomodel, "--bits", "4,9"], &["--bits 9", "1..=8"]);
    t.add("quantize_bits_zero", args!["quantize", q_nomodel, "--bits", "0"], &["--bits 0", "1..=8"]);
    t.add("quantize_zero_level_one_bit", args!["quantize", q_nomodel, "--zero-level", "--bits", "1,2"], &["--zero-level", "bits >= 2"]);
    t.add("quantize_unknown_granularity", args!["quantize", q_nomodel, "--granularity", "block"], &["--granularity \"block\"", "layer or channel"]);
    t.add("quantize_unknown_criterion", args!["quantize", q_nomodel, "--criterion", "kl"], &["--criterion \"kl\"", "mse or correlation"]);
    t.add("quantize_load_not_safetensors", args!["quantize", q_nomodel, "--load", q_nomodel.join("config.toml")], &["no model"]);
}

// ---------------------------------------------------------------- the run

/// What is wrong with one case's outcome, if anything.
fn check(case: &Case, out: &Output) -> Vec<String> {
    let err = String::from_utf8_lossy(&out.stderr);
    let mut problems = vec![];
    match out.status.code() {
        Some(2) => {}
        Some(k) => problems.push(format!("exit code {k}, expected 2")),
        None => problems.push(format!("killed by a signal ({:?})", out.status)),
    }
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        if err.contains(bad) {
            problems.push(format!("stderr contains {bad:?}"));
        }
    }
    if !err.contains("error: ") {
        problems.push("no `error: ` line".into());
    }
    for w in &case.expect {
        if !err.contains(w.as_str()) {
            problems.push(format!("{w:?} not in stderr"));
        }
    }
    problems
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    let mut t = Table {
        root: tempfile::tempdir().unwrap(),
        cases: vec![],
        untouched: vec![],
        absent: vec![],
    };
    let good = write_good_npy(&t.dir("npy"));
    idx_cases(&mut t);
    cifar_cases(&mut t);
    npy_cases(&mut t, &good);
    heads_cases(&mut t, &good);
    landscape_cases(&mut t, &good);
    train_cases(&mut t);
    config_cases(&mut t);
    study_cases(&mut t);
    let names: BTreeSet<&str> = t.cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), t.cases.len());

    let bin = env!("CARGO_BIN_EXE_symfeat");
    let mut failures = vec![];
    for case in &t.cases {
        let out = Command::new(bin).args(&case.args).output().unwrap();
        let problems = check(case, &out);
        if !problems.is_empty() {
            let err: String = String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(600)
                .collect();
            failures.push(format!(
                "{}: {}\n    args: {:?}\n    stderr: {}",
                case.name,
                problems.join("; "),
                case.args,
                err.trim_end().replace('\n', "\n            ")
            ));
        }
    }
    for p in &t.absent {
        if p.exists() {
            failures.push(format!("{} was created by a failing command", p.display()));
        }
    }
    for (p, before) in &t.untouched {
        if fs::read(p).ok().as_ref() != Some(before) {
            failures.push(format!("{} was changed by a failing command", p.display()));
        }
    }
    println!(
        "bad_input: {} cases run, {} failed",
        t.cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        t.cases.len(),
        failures.join("\n")
    );
}
