//! `symfeat heads list|eval` end to end: the conformance check a PyTorch
//! user runs, against logits recomputed here from the field-notes formulas.
#![allow(clippy::needless_range_loop)]

use assert_cmd::Command;
use ndarray::{Array1, Array2};
use ndarray_npy::{read_npy, write_npy};
use std::f64::consts::PI;

fn symfeat() -> Command {
    Command::cargo_bin("symfeat").unwrap()
}

#[test]
fn heads_list_names_every_head_and_its_defaults() {
    let out = symfeat().args(["heads", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for h in [
        "softmax",
        "normface",
        "sphereface",
        "cosface",
        "arcface",
        "combined",
        "center",
        "polygon",
        "simplex",
        "orthoplex",
        "dcube",
        "symmetrical",
    ] {
        assert!(text.contains(h), "{h} missing");
    }
    for p in [
        "s = 64",
        "m = 0.35",
        "m = 0.5",
        "easy_margin",
        "detach_margin",
        "lambda_base = 1000",
        "m1 = 1",
        "center_weight = 0.01",
        "center_lr",
        "p_max",
    ] {
        assert!(text.contains(p), "{p} missing in:\n{text}");
    }
}

struct Case {
    dir: tempfile::TempDir,
    x: Array2<f32>,
    y: Array1<i64>,
    w: Array2<f32>,
}

fn case() -> Case {
    let (n, d, c) = (7, 5, 4);
    let mut s = 12345u64;
    let mut r = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5
    };
    let x = Array2::from_shape_fn((n, d), |_| r());
    let w = Array2::from_shape_fn((c, d), |_| r());
    let y = Array1::from_shape_fn(n, |i| (i % c) as i64);
    let dir = tempfile::tempdir().unwrap();
    write_npy(dir.path().join("x.npy"), &x).unwrap();
    write_npy(dir.path().join("y.npy"), &y).unwrap();
    write_npy(dir.path().join("w.npy"), &w).unwrap();
    Case { dir, x, y, w }
}

fn eval(c: &Case, head: &str, params: &[&str], extra: &[&str]) -> (f64, Array2<f32>) {
    let p = |f: &str| c.dir.path().join(f).display().to_string();
    let mut args = vec![
        "heads".to_string(),
        "eval".into(),
        "--head".into(),
        head.into(),
    ];
    for kv in params {
        args.extend(["--param".to_string(), kv.to_string()]);
    }
    args.extend(
        [
            "--features",
            &p("x.npy"),
            "--labels",
            &p("y.npy"),
            "--weights",
            &p("w.npy"),
            "--logits-out",
            &p("l.npy"),
        ]
        .map(String::from),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = symfeat().args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{head}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["loss"].as_f64().unwrap(),
        read_npy(c.dir.path().join("l.npy")).unwrap(),
    )
}

fn cos(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    d / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
}

fn check(
    c: &Case,
    head: &str,
    params: &[&str],
    extra: &[&str],
    target: impl Fn(f64, f64) -> f64,
    scale: impl Fn(&[f64]) -> f64,
) {
    let (loss, logits) = eval(c, head, params, extra);
    let mut total = 0.0;
    for i in 0..c.x.nrows() {
        let xi: Vec<f64> = c.x.row(i).iter().map(|&v| v as f64).collect();
        let yi = c.y[i] as usize;
        let mut z: Vec<f64> = (0..c.w.nrows())
            .map(|j| {
                let wj: Vec<f64> = c.w.row(j).iter().map(|&v| v as f64).collect();
                cos(&xi, &wj)
            })
            .collect();
        z[yi] = target(z[yi], z[yi].clamp(-1.0 + 1e-7, 1.0 - 1e-7).acos());
        let s = scale(&xi);
        let z: Vec<f64> = z.iter().map(|v| v * s).collect();
        for (j, v) in z.iter().enumerate() {
            assert!(
                (logits[[i, j]] as f64 - v).abs() < 1e-3 * (1.0 + v.abs()),
                "{head} [{i},{j}]: {} vs {v}",
                logits[[i, j]]
            );
        }
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        total += m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - z[yi];
    }
    let want = total / c.x.nrows() as f64;
    assert!(
        (loss - want).abs() < 1e-4 * (1.0 + want),
        "{head}: loss {loss} vs {want}"
    );
}

#[test]
fn heads_eval_matches_the_formulas() {
    let c = case();
    check(&c, "normface", &["s=16"], &[], |cy, _| cy, |_| 16.0);
    check(&c, "cosface", &[], &[], |cy, _| cy - 0.35, |_| 64.0);
    check(
        &c,
        "arcface",
        &["s=30", "m=0.5"],
        &[],
        |cy, t| {
            if t + 0.5 > PI {
                cy - 0.5 * 0.5f64.sin()
            } else {
                (t + 0.5).cos()
            }
        },
        |_| 30.0,
    );
    check(
        &c,
        "combined",
        &["s=10", "m1=1.2", "m2=0.2", "m3=0.1"],
        &[],
        |_, t| (1.2 * t + 0.2).cos() - 0.1,
        |_| 10.0,
    );
    let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
    check(
        &c,
        "sphereface",
        &["m=4", "anneal=0", "lambda=0"],
        &[],
        |_, t| {
            let k = (4.0 * t / PI).floor();
            (-1f64).powi(k as i32) * (4.0 * t).cos() - 2.0 * k
        },
        norm,
    );
    // annealed lambda at step 100: max(5, 1000 / (1 + 0.12 * 100)) = 76.92...
    let lambda = 1000.0 / (1.0 + 0.12 * 100.0);
    check(
        &c,
        "sphereface",
        &[],
        &["--step", "100"],
        |cy, t| {
            let k = (4.0 * t / PI).floor();
            (lambda * cy + (-1f64).powi(k as i32) * (4.0 * t).cos() - 2.0 * k) / (1.0 + lambda)
        },
        norm,
    );
}

#[test]
fn heads_eval_softmax_and_symmetrical() {
    let c = case();
    let b = Array1::from_vec(vec![0.1f32, -0.2, 0.3, 0.0]);
    write_npy(c.dir.path().join("b.npy"), &b).unwrap();
    let (loss, logits) = eval(
        &c,
        "softmax",
        &[],
        &["--bias", c.dir.path().join("b.npy").to_str().unwrap()],
    );
    for i in 0..7 {
        for j in 0..4 {
            let want: f32 = c.x.row(i).dot(&c.w.row(j)) + b[j];
            assert!((logits[[i, j]] - want).abs() < 1e-5);
        }
    }
    assert!(loss > 0.0);
    // symmetrical: weights file holds (v1, v2); the class weights are the polygon
    let v = c.w.slice(ndarray::s![0..2, ..]).to_owned();
    write_npy(c.dir.path().join("w.npy"), &v).unwrap();
    let (_, logits) = eval(&c, "symmetrical", &["s=16"], &["--classes", "6"]);
    let v1: Vec<f64> = v.row(0).iter().map(|&a| a as f64).collect();
    let v2: Vec<f64> = v.row(1).iter().map(|&a| a as f64).collect();
    let n1: Vec<f64> = v1
        .iter()
        .map(|a| a / v1.iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect();
    let proj: f64 = n1.iter().zip(&v2).map(|(a, b)| a * b).sum();
    let u: Vec<f64> = v2.iter().zip(&n1).map(|(b, a)| b - proj * a).collect();
    let un = u.iter().map(|x| x * x).sum::<f64>().sqrt();
    for i in 0..7 {
        let xi: Vec<f64> = c.x.row(i).iter().map(|&a| a as f64).collect();
        for k in 0..6 {
            let t = 2.0 * PI * k as f64 / 6.0;
            let wk: Vec<f64> = (0..5)
                .map(|j| t.cos() * n1[j] + t.sin() * u[j] / un)
                .collect();
            let want = 16.0 * cos(&xi, &wk);
            assert!(
                (logits[[i, k]] as f64 - want).abs() < 1e-3,
                "[{i},{k}] {} vs {want}",
                logits[[i, k]]
            );
        }
    }
}

#[test]
fn heads_eval_rejects_bad_input() {
    let c = case();
    let p = |f: &str| c.dir.path().join(f).display().to_string();
    let base = |head: &str| -> Vec<String> {
        [
            "heads",
            "eval",
            "--head",
            head,
            "--features",
            &p("x.npy"),
            "--labels",
            &p("y.npy"),
            "--weights",
            &p("w.npy"),
        ]
        .map(String::from)
        .to_vec()
    };
    for (extra, head, word) in [
        (vec!["--param", "m=2"], "arcface", "radians"),
        (vec!["--param", "s=0"], "cosface", "s = 0"),
        (vec![], "softmax", "--bias"),
        (vec![], "symmetrical", "2 x D"),
        (vec![], "vgg", "--head"),
        (vec!["--param", "q=1"], "normface", "no parameter"),
    ] {
        let mut args = base(head);
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = symfeat().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{head}: {err}");
        assert!(
            err.contains(word) && !err.contains("panicked"),
            "{head}: {word:?} not in {err}"
        );
    }
}
