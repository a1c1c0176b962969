//! Every head against an independent f64 computation of its formula (field
//! notes §3): logits on random and hand-made inputs, the branch cases, and
//! gradients against finite differences.

#![allow(clippy::needless_range_loop, clippy::type_complexity)] // index loops mirror the formulas

use super::*;
use crate::backend::CpuTrain;
use std::collections::BTreeMap;
use std::f64::consts::PI;

type B = CpuTrain;

fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / (1u64 << 53) as f64
    }
}

fn spec(kind: HeadKind, params: &[(&str, f64)]) -> HeadSpec {
    HeadSpec {
        kind,
        params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn tensor(x: &[Vec<f64>]) -> Tensor<B, 2> {
    let (n, d) = (x.len(), x[0].len());
    let f: Vec<f32> = x.iter().flatten().map(|&v| v as f32).collect();
    Tensor::<B, 1>::from_floats(f.as_slice(), &Default::default()).reshape([n, d])
}

fn labels(y: &[usize]) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = y.iter().map(|&a| a as i64).collect();
    Tensor::from_data(TensorData::new(v, [y.len()]), &Default::default())
}

fn rows<BB: Backend>(t: Tensor<BB, 2>) -> Vec<Vec<f64>> {
    let [_, c] = t.dims();
    let v: Vec<f32> = t.into_data().convert::<f32>().to_vec().unwrap();
    v.chunks(c)
        .map(|r| r.iter().map(|&a| a as f64).collect())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}
fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let n = norm(a) * norm(b);
    if n == 0.0 { 0.0 } else { dot(a, b) / n }
}

/// The reference training logits of `kind` (f64, straight from the formulas).
fn reference(
    kind: HeadKind,
    p: &BTreeMap<String, f64>,
    w: &[Vec<f64>],
    x: &[f64],
    y: usize,
    step: usize,
) -> Vec<f64> {
    let cos: Vec<f64> = w.iter().map(|wj| cosine(x, wj)).collect();
    let s = p.get("s").copied().unwrap_or(1.0);
    let mut out: Vec<f64> = cos.iter().map(|c| s * c).collect();
    let cy = cos[y].clamp(-(1.0 - 1e-7), 1.0 - 1e-7);
    let t = cy.acos();
    match kind {
        HeadKind::Cosface => out[y] = s * (cos[y] - p["m"]),
        HeadKind::Arcface => {
            let m = p["m"];
            out[y] = s * if p["easy_margin"] == 1.0 {
                if cy > 0.0 { (t + m).cos() } else { cy }
            } else if t + m > PI {
                cy - m * m.sin()
            } else {
                (t + m).cos()
            };
        }
        HeadKind::Combined => out[y] = s * ((p["m1"] * t + p["m2"]).cos() - p["m3"]),
        HeadKind::Sphereface => {
            let m = p["m"];
            let k = (m * t / PI).floor();
            let psi = (-1f64).powi(k as i32) * (m * t).cos() - 2.0 * k;
            let lambda = if p["anneal"] == 1.0 {
                (p["lambda_base"]
                    * (1.0 + p["lambda_gamma"] * step as f64).powf(-p["lambda_power"]))
                .max(p["lambda_min"])
            } else {
                p["lambda"]
            };
            let xn = norm(x);
            out = cos.iter().map(|c| xn * c).collect();
            out[y] = xn * (lambda * cy + psi) / (1.0 + lambda);
        }
        _ => {}
    }
    out
}

fn check_against_reference(
    kind: HeadKind,
    params: &[(&str, f64)],
    x: &[Vec<f64>],
    y: &[usize],
    step: usize,
    tol: f64,
) {
    let sp = spec(kind, params);
    let p = sp.resolve().unwrap();
    let d = x[0].len();
    let head = sp.init::<B>(d, 5, &Default::default()).unwrap();
    let w = rows(head.class_weights());
    let got = rows(head.train_logits(tensor(x), labels(y), step));
    for i in 0..x.len() {
        let want = reference(kind, p.values(), &w, &x[i], y[i], step);
        for j in 0..5 {
            assert!(
                got[i][j].is_finite(),
                "{kind:?} {params:?}: NaN/Inf at [{i},{j}]"
            );
            assert!(
                (got[i][j] - want[j]).abs() < tol * (1.0 + want[j].abs()),
                "{kind:?} {params:?} sample {i} class {j}: {} vs {}",
                got[i][j],
                want[j]
            );
        }
    }
}

fn margin_cases() -> Vec<(HeadKind, Vec<(&'static str, f64)>)> {
    vec![
        (HeadKind::Normface, vec![]),
        (HeadKind::Cosface, vec![]),
        (HeadKind::Cosface, vec![("s", 30.0), ("m", 0.2)]),
        (HeadKind::Arcface, vec![]),
        (HeadKind::Arcface, vec![("m", 1.2)]),
        (HeadKind::Arcface, vec![("easy_margin", 1.0)]),
        (HeadKind::Arcface, vec![("detach_margin", 1.0)]),
        (HeadKind::Combined, vec![]),
        (
            HeadKind::Combined,
            vec![("m1", 1.35), ("m2", 0.25), ("m3", 0.1)],
        ),
        (HeadKind::Sphereface, vec![]),
        (HeadKind::Sphereface, vec![("anneal", 0.0), ("lambda", 0.0)]),
        (
            HeadKind::Sphereface,
            vec![("m", 3.0), ("anneal", 0.0), ("lambda", 2.5)],
        ),
        (HeadKind::Sphereface, vec![("m", 1.0)]),
    ]
}

#[test]
fn margin_heads_match_their_formulas_on_random_inputs() {
    let mut r = lcg(3);
    let x: Vec<Vec<f64>> = (0..12)
        .map(|_| (0..6).map(|_| r() - 0.5).collect())
        .collect();
    let y: Vec<usize> = (0..12).map(|i| i % 5).collect();
    for (kind, params) in margin_cases() {
        for step in [0, 7, 5000] {
            check_against_reference(kind, &params, &x, &y, step, 1e-4);
        }
    }
}

#[test]
fn branch_cases_are_finite_and_follow_the_reference() {
    // Features on, against and orthogonal to w_y, and a zero feature.
    for (kind, params) in margin_cases() {
        let sp = spec(kind, &params);
        let head = sp.init::<B>(4, 5, &Default::default()).unwrap();
        let w = rows(head.class_weights());
        let mut x = vec![
            w[0].clone(),
            w[1].iter().map(|v| -2.0 * v).collect(),
            vec![0.0; 4],
        ];
        // orthogonal to w_3
        let mut o = vec![1.0, -1.0, 0.5, 0.25];
        let k = dot(&o, &w[3]) / dot(&w[3], &w[3]);
        o.iter_mut().zip(&w[3]).for_each(|(a, b)| *a -= k * b);
        x.push(o);
        check_against_reference(kind, &params, &x, &[0, 1, 2, 3], 10, 1e-3);
    }
}

#[test]
fn arcface_falls_back_past_pi_and_keeps_the_target_decreasing() {
    let m = 0.5;
    let grid: Vec<f64> = (0..=200).map(|i| -1.0 + i as f64 / 100.0).collect();
    let t = tensor(&grid.iter().map(|&c| vec![c]).collect::<Vec<_>>());
    let out: Vec<f64> = rows(arcface_target(t, m, false))
        .into_iter()
        .map(|r| r[0])
        .collect();
    for (c, v) in grid.iter().zip(&out) {
        let t = c.clamp(-1.0 + 1e-7, 1.0 - 1e-7).acos();
        let want = if t + m > PI {
            c - m * m.sin()
        } else {
            (t + m).cos()
        };
        assert!((v - want).abs() < 1e-4, "cos {c}: {v} vs {want}");
    }
    for w in out.windows(2) {
        assert!(w[1] >= w[0] - 1e-6, "target not monotone in cos t: {w:?}");
    }
}

#[test]
fn sphereface_psi_is_continuous_and_monotone() {
    for m in 1..=5 {
        let grid: Vec<f64> = (0..=400).map(|i| -1.0 + i as f64 / 200.0).collect();
        let t = tensor(&grid.iter().map(|&c| vec![c]).collect::<Vec<_>>());
        let out: Vec<f64> = rows(psi(t, m)).into_iter().map(|r| r[0]).collect();
        for (i, w) in out.windows(2).enumerate() {
            assert!(
                w[1] >= w[0] - 1e-4,
                "m {m}: psi decreases at cos {}: {w:?}",
                grid[i]
            );
            assert!(
                (w[1] - w[0]).abs() < 0.2,
                "m {m}: psi jumps at cos {}: {w:?}",
                grid[i]
            );
        }
        assert!(
            (out[400] - 1.0).abs() < 1e-4 && (out[0] + 2.0 * m as f64 - 1.0).abs() < 1e-3,
            "m {m}: ends {} {}",
            out[0],
            out[400]
        );
    }
}

/// Central differences of the f64 reference loss in the features, against
/// burn's autodiff gradient.
#[test]
fn gradients_match_finite_differences() {
    let mut r = lcg(5);
    let x: Vec<Vec<f64>> = (0..6)
        .map(|_| (0..4).map(|_| r() - 0.3).collect())
        .collect();
    let y: Vec<usize> = (0..6).map(|i| i % 5).collect();
    let mut cases = margin_cases();
    cases.push((HeadKind::Softmax, vec![]));
    cases.push((HeadKind::Symmetrical, vec![("s", 4.0)]));
    for (kind, params) in cases {
        let params: Vec<(&str, f64)> = params
            .into_iter()
            .map(|(k, v)| if k == "s" { (k, v.min(8.0)) } else { (k, v) })
            .chain(
                // moderate scales keep f32 gradients well conditioned
                match kind {
                    HeadKind::Cosface | HeadKind::Arcface | HeadKind::Combined
                        if !params_has_s(&params_of(kind)) =>
                    {
                        vec![("s", 8.0)]
                    }
                    HeadKind::Normface => vec![("s", 4.0)],
                    _ => vec![],
                },
            )
            .collect();
        let sp = spec(kind, &params);
        let p = sp.resolve().unwrap();
        let head = sp.init::<B>(4, 5, &Default::default()).unwrap();
        let w = rows(head.class_weights());
        let bias: Option<Vec<f64>> = head.bias().map(|b| {
            let v: Vec<f32> = b.into_data().to_vec().unwrap();
            v.into_iter().map(f64::from).collect()
        });
        let ref_loss = |x: &[Vec<f64>]| -> f64 {
            let mut total = 0.0;
            for (xi, &yi) in x.iter().zip(&y) {
                let z = match kind {
                    HeadKind::Softmax => w
                        .iter()
                        .enumerate()
                        .map(|(j, wj)| dot(xi, wj) + bias.as_ref().unwrap()[j])
                        .collect(),
                    HeadKind::Symmetrical => w.iter().map(|wj| p["s"] * cosine(xi, wj)).collect(),
                    _ => reference(kind, p.values(), &w, xi, yi, 3),
                };
                let m = z.iter().cloned().fold(f64::MIN, f64::max);
                total += m + z.iter().map(|v: &f64| (v - m).exp()).sum::<f64>().ln() - z[yi];
            }
            total / x.len() as f64
        };
        let xt = tensor(&x).require_grad();
        let loss = cross_entropy(head.train_logits(xt.clone(), labels(&y), 3), labels(&y));
        let lv: f32 = loss.clone().into_scalar();
        assert!(
            (lv as f64 - ref_loss(&x)).abs() < 1e-4 * (1.0 + lv.abs() as f64),
            "{kind:?}: loss {lv} vs {}",
            ref_loss(&x)
        );
        let g = rows(xt.grad(&loss.backward()).unwrap());
        let detach = p.values().get("detach_margin") == Some(&1.0);
        for i in 0..x.len() {
            for k in 0..4 {
                let eps = 1e-6;
                let bump = |delta: f64| {
                    let mut xb = x.clone();
                    xb[i][k] += delta;
                    ref_loss(&xb)
                };
                if detach {
                    continue; // the detached margin's gradient is, by design, not the loss's derivative
                }
                let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
                assert!(
                    (g[i][k] - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                    "{kind:?} {params:?}: d/dx[{i}][{k}] {} vs {fd}",
                    g[i][k]
                );
            }
        }
    }
}

fn params_of(kind: HeadKind) -> Vec<(&'static str, f64)> {
    margin_cases()
        .into_iter()
        .filter(|(k, _)| *k == kind)
        .flat_map(|(_, p)| p)
        .collect()
}
fn params_has_s(p: &[(&str, f64)]) -> bool {
    p.iter().any(|(k, _)| *k == "s")
}

#[test]
fn detached_arcface_margin_has_the_plain_cosine_gradient() {
    let mut r = lcg(9);
    let x: Vec<Vec<f64>> = (0..4)
        .map(|_| (0..3).map(|_| r() - 0.5).collect())
        .collect();
    let y = [0, 1, 2, 3];
    let h = spec(HeadKind::Arcface, &[("detach_margin", 1.0), ("s", 4.0)])
        .init::<B>(3, 5, &Default::default())
        .unwrap();
    let mask = || labels(&y).one_hot::<2>(5).float();
    // d(sum of target logits)/dx: with a detached margin it equals that of s cos t_y
    let grad = |train: bool| {
        let xt = tensor(&x).require_grad();
        let z = if train {
            h.train_logits(xt.clone(), labels(&y), 0)
        } else {
            h.logits(xt.clone())
        };
        rows(xt.grad(&(z * mask()).sum().backward()).unwrap())
    };
    let (a, b) = (grad(true), grad(false));
    for i in 0..4 {
        for k in 0..3 {
            assert!(
                (a[i][k] - b[i][k]).abs() < 1e-5,
                "{} vs {}",
                a[i][k],
                b[i][k]
            );
        }
    }
    // ... while the logit itself carries the margin
    let z = rows(h.train_logits(tensor(&x), labels(&y), 0));
    let plain = rows(h.logits(tensor(&x)));
    assert!(z[0][0] < plain[0][0] - 1e-3);
}

#[test]
fn fixed_classifiers_have_their_closed_form_gram_matrices() {
    let (d, c) = (12, 6);
    let dev = Default::default();
    let gram = |kind: HeadKind| -> Vec<Vec<f64>> {
        let w = rows(
            spec(kind, &[])
                .init::<B>(d, c, &dev)
                .unwrap()
                .class_weights(),
        );
        w.iter()
            .map(|a| w.iter().map(|b| cosine(a, b)).collect())
            .collect()
    };
    let g = gram(HeadKind::Simplex);
    for j in 0..c {
        for k in 0..c {
            let want = if j == k { 1.0 } else { -1.0 / (c as f64 - 1.0) };
            assert!(
                (g[j][k] - want).abs() < 1e-5,
                "simplex [{j},{k}] {}",
                g[j][k]
            );
        }
    }
    let g = gram(HeadKind::Polygon);
    for j in 0..c {
        for k in 0..c {
            let want = (2.0 * PI * (j as f64 - k as f64) / c as f64).cos();
            assert!(
                (g[j][k] - want).abs() < 1e-5,
                "polygon [{j},{k}] {}",
                g[j][k]
            );
        }
    }
    let g = gram(HeadKind::Orthoplex);
    for j in 0..c {
        for k in 0..c {
            // ±e_i pairs: -1 with the opposite vertex, 0 otherwise
            let want = if j == k {
                1.0
            } else if j / 2 == k / 2 {
                -1.0
            } else {
                0.0
            };
            assert!(
                (g[j][k] - want).abs() < 1e-6,
                "orthoplex [{j},{k}] {} (layout changed?)",
                g[j][k]
            );
        }
    }
    let g = gram(HeadKind::Dcube);
    for row in &g {
        for v in row {
            // vertices of a 3-cube: cosines in {1, 1/3, -1/3, -1}
            assert!(
                [1.0, 1.0 / 3.0, -1.0 / 3.0, -1.0]
                    .iter()
                    .any(|w| (v - w).abs() < 1e-6),
                "dcube cos {v}"
            );
        }
    }
    assert!(
        spec(HeadKind::Simplex, &[]).init::<B>(4, 6, &dev).is_err(),
        "simplex needs D >= C"
    );
}

#[test]
fn rotated_orthoplex_and_dcube_keep_their_gram_matrix_off_the_axes() {
    let (d, c) = (12, 6);
    let dev = Default::default();
    let weights = |kind: HeadKind, rotate: f64| {
        rows(
            spec(kind, &[("rotate", rotate)])
                .init::<B>(d, c, &dev)
                .unwrap()
                .class_weights(),
        )
    };
    for kind in [HeadKind::Orthoplex, HeadKind::Dcube] {
        let (axes, rotated) = (weights(kind, 0.0), weights(kind, 1.0));
        for j in 0..c {
            for k in 0..c {
                let (a, b) = (cosine(&axes[j], &axes[k]), cosine(&rotated[j], &rotated[k]));
                assert!((a - b).abs() < 1e-5, "{kind:?} [{j},{k}] {a} vs {b}");
            }
        }
        let used = |w: &[Vec<f64>]| (0..d).filter(|&i| w.iter().any(|r| r[i] != 0.0)).count();
        assert!(
            used(&axes) <= 3,
            "{kind:?} axis layout uses {} axes",
            used(&axes)
        );
        assert_eq!(used(&rotated), d, "{kind:?} rotated layout");
    }
}

#[test]
fn fixed_weights_receive_no_update() {
    use burn::optim::{GradientsParams, Optimizer, SgdConfig};
    let dev = Default::default();
    let head = spec(HeadKind::Simplex, &[("learn_scale", 1.0)])
        .init::<B>(8, 4, &dev)
        .unwrap();
    let before = rows(head.class_weights());
    let s0 = head.scale().unwrap();
    let mut optim = SgdConfig::new().init::<B, Head<B>>();
    let x = Tensor::<B, 2>::random([6, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let loss = cross_entropy(head.logits(x), labels(&[0, 1, 2, 3, 0, 1]));
    let grads = GradientsParams::from_grads(loss.backward(), &head);
    let head = optim.step(0.5, head, grads);
    assert_eq!(rows(head.class_weights()), before);
    assert_ne!(head.scale().unwrap(), s0, "a learnable scale must move");
}

#[test]
fn invalid_parameters_are_clear_errors() {
    let cases: Vec<(HeadKind, Vec<(&str, f64)>, &str)> = vec![
        (HeadKind::Normface, vec![("s", 0.0)], "s = 0"),
        (HeadKind::Cosface, vec![("s", -1.0)], "s = -1"),
        (HeadKind::Cosface, vec![("m", 1.5)], "m = 1.5"),
        (HeadKind::Arcface, vec![("m", 2.0)], "radians"),
        (HeadKind::Arcface, vec![("easy_margin", 0.5)], "0 or 1"),
        (HeadKind::Sphereface, vec![("m", 0.0)], "integer m"),
        (HeadKind::Sphereface, vec![("m", 2.5)], "integer m"),
        (HeadKind::Combined, vec![("m1", 0.0)], "m1"),
        (HeadKind::Symmetrical, vec![("p_max", 1.0)], "p_max"),
        (HeadKind::Softmax, vec![("s", 1.0)], "no parameter"),
    ];
    for (kind, p, word) in cases {
        let e = spec(kind, &p).resolve().unwrap_err().to_string();
        assert!(e.contains(word), "{kind:?} {p:?}: {e}");
    }
    let e = spec(HeadKind::Symmetrical, &[])
        .init::<B>(1, 10, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("D >= 2"), "{e}");
    let e = spec(HeadKind::Symmetrical, &[("p_max", 0.05)])
        .init::<B>(8, 10, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("p_max"), "{e}");
}

#[test]
fn symmetrical_auto_scale_reaches_the_target_probability() {
    for (c, target) in [(10usize, 0.99), (100, 0.99), (100, 0.9)] {
        let h = spec(HeadKind::Symmetrical, &[("p_max", target)])
            .init::<B>(16, c, &Default::default())
            .unwrap();
        let s = h.scale().unwrap();
        let p = crate::geometry::polygon::p_max(s, c);
        assert!(
            p >= target - 1e-9 && crate::geometry::polygon::p_max(s * 0.99, c) < target,
            "C {c}: s {s} gives p_max {p}"
        );
    }
}

/// Regression (#15): `lambda=0` alone used to be ignored (anneal defaults to
/// 1), so the user silently got annealing and another loss.
#[test]
fn an_explicit_sphereface_lambda_is_a_fixed_lambda() {
    let spec = |p: &[(&str, f64)]| HeadSpec {
        kind: HeadKind::Sphereface,
        params: p.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    };
    let r = spec(&[("lambda", 0.0)]).resolve().unwrap();
    assert_eq!((r["anneal"], r["lambda"]), (0.0, 0.0));
    assert_eq!(spec(&[]).resolve().unwrap()["anneal"], 1.0);
    assert_eq!(
        spec(&[("lambda", 3.0), ("anneal", 0.0)]).resolve().unwrap()["anneal"],
        0.0
    );
    let e = spec(&[("lambda", 0.0), ("anneal", 1.0)])
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(e.contains("lambda") && e.contains("anneal"), "{e}");
}

/// Regression (#15): `center()` turned a parameter error into `None`, which
/// silently dropped the center loss from training.
#[test]
fn center_settings_with_a_bad_parameter_are_an_error() {
    let e = spec(HeadKind::Center, &[("center_weight", -1.0)])
        .center()
        .unwrap_err()
        .to_string();
    assert!(e.contains("center_weight"), "{e}");
    assert_eq!(
        spec(HeadKind::Center, &[]).center().unwrap(),
        Some((0.01, 0.5))
    );
    assert_eq!(spec(HeadKind::Softmax, &[]).center().unwrap(), None);
}

/// The registry: every head parses back from its name and aliases, names
/// are unique, and every head builds with its defaults (their values pass
/// their own checks).
#[test]
fn every_head_of_the_registry_parses_and_builds_with_its_defaults() {
    let dev = Default::default();
    let mut names = std::collections::BTreeSet::new();
    for &kind in HeadKind::ALL {
        let desc = kind.desc();
        assert!(names.insert(desc.name), "{} twice", desc.name);
        assert_eq!(HeadKind::parse(desc.name), Some(kind));
        for a in desc.aliases {
            assert_eq!(HeadKind::parse(a), Some(kind), "alias {a}");
        }
        let head = spec(kind, &[]).init::<B>(16, 5, &dev).unwrap();
        assert_eq!(head.class_weights().dims(), [5, 16], "{}", desc.name);
        assert_eq!(
            head.scale().is_some(),
            desc.cosine && kind != HeadKind::Sphereface,
            "{}",
            desc.name
        );
    }
    assert_eq!(names.len(), 12);
    assert!(HeadKind::names().starts_with("softmax, normface"));
}

/// `load_weights`: what a head exports loads back and gives the same
/// logits; other shapes, and a bias where there is none (or none where
/// there is one), are errors.
#[test]
fn every_head_loads_the_weights_it_exports() {
    let dev = Default::default();
    let x = Tensor::<B, 2>::random([6, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    for &kind in HeadKind::ALL {
        let name = kind.name();
        let src = spec(kind, &[]).init::<B>(8, 4, &dev).unwrap();
        let mut dst = spec(kind, &[]).init::<B>(8, 4, &dev).unwrap();
        let weights = src.derived_params().unwrap_or_else(|| src.class_weights());
        let r = dst.load_weights(weights.clone(), src.bias());
        if !kind.desc().learned {
            assert!(
                r.unwrap_err().to_string().contains("fixed classifiers"),
                "{name}"
            );
            continue;
        }
        r.unwrap();
        let (a, b) = (rows(src.logits(x.clone())), rows(dst.logits(x.clone())));
        for (ra, rb) in a.iter().zip(&b) {
            for (va, vb) in ra.iter().zip(rb) {
                assert!((va - vb).abs() < 1e-5, "{name}: {va} vs {vb}");
            }
        }
        let wrong = Tensor::<B, 2>::zeros([3, 8], &dev);
        assert!(
            dst.load_weights(wrong, src.bias()).is_err(),
            "{name}: wrong shape"
        );
        let flipped = match src.bias() {
            Some(_) => None,
            None => Some(Tensor::<B, 1>::zeros([4], &dev)),
        };
        assert!(dst.load_weights(weights, flipped).is_err(), "{name}: bias");
    }
}

/// Review of #15: for one bad input, the same error as before the one-file heads.
#[test]
fn checks_run_in_the_order_of_the_old_resolve() {
    // SphereFace: the lambda/anneal contradiction before lambda's range.
    let e = spec(HeadKind::Sphereface, &[("lambda", -1.0), ("anneal", 1.0)])
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(e.contains("contradict"), "{e}");
    // m before the lambda ranges.
    let e = spec(HeadKind::Sphereface, &[("m", 2.5), ("lambda_min", -1.0)])
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(e.contains("SphereFace needs an integer m"), "{e}");
    // ArcFace: the flags before m.
    let e = spec(HeadKind::Arcface, &[("m", 9.0), ("easy_margin", 2.0)])
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(e.contains("easy_margin"), "{e}");
}
