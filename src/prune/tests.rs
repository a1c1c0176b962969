//! The pruner against independent computations: hand counts of MACs and
//! parameters, the rebuilt network against the gated one, the Taylor-FO-BN
//! score against finite differences on the gate.

use super::criterion::Criterion;
use super::engine::batch_scores;
use super::gates::Gates;
use super::rebuild::{compose, cost, rebuild};
use crate::backend::{Cpu, CpuTrain};
use crate::heads::HeadOps;
use crate::nets::{FeatureAct, NetKind, NetSpec};
use crate::tensors::{collect, replace};
use crate::train::{Model, TrainConfig, ValidTrainConfig, model};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

const CLASSES: usize = 4;

fn setup(kind: NetKind, ch: usize, hw: usize) -> (ValidTrainConfig, NetSpec) {
    let raw = TrainConfig {
        net: match kind {
            NetKind::Mlp => "mlp",
            NetKind::Cnn => "cnn",
            NetKind::Lenet => "lenet",
            _ => "resnet20",
        }
        .into(),
        feature_dim: 3,
        ..TrainConfig::default()
    };
    let cfg = raw.check().unwrap();
    let spec = NetSpec {
        kind,
        channels: ch,
        height: hw,
        width: hw,
        lenet_dim: 3,
        feature_act: FeatureAct::Linear,
        kept: None,
        binary: crate::nets::Binarize::None,
    };
    (cfg, spec)
}

fn nets() -> Vec<(ValidTrainConfig, NetSpec)> {
    vec![
        setup(NetKind::Mlp, 1, 8),
        setup(NetKind::Cnn, 1, 8),
        setup(NetKind::Lenet, 1, 8),
        setup(NetKind::Resnet20, 3, 8),
    ]
}

/// Every tensor random from `seed` (not from the backend's generator,
/// which parallel tests share): weights uniform in +-1/sqrt(fan-in) as
/// PyTorch initialises them, BatchNorm's gamma around 1 and its running
/// variance positive, so that biases and statistics are not trivially 0 / 1.
fn randomised<B: Backend>(m: Model<B>, seed: u64, device: &B::Device) -> Model<B> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: BTreeMap<String, Vec<f32>> = collect(&m)
        .unwrap()
        .into_iter()
        .map(|t| {
            let scale = match t.shape.len() {
                4 => 1.0 / ((t.shape[1] * t.shape[2] * t.shape[3]) as f32).sqrt(),
                2 => 1.0 / (t.shape[0] as f32).sqrt(),
                _ => 0.5,
            };
            let (var, gamma) = (t.name.ends_with("running_var"), t.name.ends_with("gamma"));
            let v = t
                .values
                .iter()
                .map(|_| {
                    let u: f32 = 2.0 * rng.r#gen::<f32>() - 1.0;
                    match (var, gamma) {
                        (true, _) => 0.5 + 0.5 * u.abs(),
                        (_, true) => 1.0 + 0.3 * u,
                        _ => scale * u,
                    }
                })
                .collect();
            (t.name, v)
        })
        .collect();
    replace(m, &values, device).unwrap()
}

/// Images `[n, ch, hw, hw]` from `seed`.
fn images<B: Backend>(n: usize, spec: &NetSpec, seed: u64, device: &B::Device) -> Tensor<B, 4> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = [n, spec.channels, spec.height, spec.width];
    let v: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| 2.0 * rng.r#gen::<f32>() - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// A keep list per group dropping about a third of each, never all.
fn some_kept(groups: &[crate::nets::ChannelGroup], seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    groups
        .iter()
        .map(|g| {
            let mut k: Vec<usize> = (0..g.channels)
                .filter(|_| rng.r#gen::<f64>() > 0.35)
                .collect();
            if k.is_empty() {
                k.push(g.channels - 1);
            }
            k
        })
        .collect()
}

fn alive_of(groups: &[crate::nets::ChannelGroup], keep: &[Vec<usize>]) -> Vec<Vec<bool>> {
    groups
        .iter()
        .zip(keep)
        .map(|(g, k)| (0..g.channels).map(|i| k.contains(&i)).collect())
        .collect()
}

/// The rebuilt network gives the gated network's logits, for every
/// backbone (the ResNet's stages re-routed through the shortcuts), and a
/// second pruning composes with the first.
#[test]
fn a_rebuilt_model_gives_the_gated_models_logits() {
    let dev = Default::default();
    for (cfg, spec) in nets() {
        let m = model::build::<Cpu>(&cfg, &spec, CLASSES, &dev).unwrap();
        let m = randomised(m, 11, &dev);
        let groups = m.net.channel_groups();
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let keep = some_kept(&groups, 5);
        let x = images::<Cpu>(3, &spec, 1, &dev);
        let gated = Gates::<Cpu>::new(&names, &alive_of(&groups, &keep), &dev);
        let want: Vec<f32> = m
            .forward_with(x.clone(), &gated)
            .1
            .into_data()
            .to_vec()
            .unwrap();
        let (small, small_spec) = rebuild(&m, &cfg, &spec, &keep, CLASSES, &dev).unwrap();
        let got: Vec<f32> = small.forward(x.clone()).1.into_data().to_vec().unwrap();
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs())))
        };
        assert!(close(&want, &got), "{:?}: {want:?} vs {got:?}", spec.kind);
        // The rebuilt net's groups have the kept widths.
        let widths: Vec<usize> = small
            .net
            .channel_groups()
            .iter()
            .map(|g| g.channels)
            .collect();
        let kept: Vec<usize> = keep.iter().map(Vec::len).collect();
        assert_eq!(widths, kept, "{:?}", spec.kind);
        // Pruning the pruned net again: its keep lists compose.
        let groups2 = small.net.channel_groups();
        let keep2 = some_kept(&groups2, 9);
        let gated2 = Gates::<Cpu>::new(&names, &alive_of(&groups2, &keep2), &dev);
        let want2: Vec<f32> = small
            .forward_with(x.clone(), &gated2)
            .1
            .into_data()
            .to_vec()
            .unwrap();
        let (smaller, s2) = rebuild(&small, &cfg, &small_spec, &keep2, CLASSES, &dev).unwrap();
        let got2: Vec<f32> = smaller.forward(x).1.into_data().to_vec().unwrap();
        assert!(close(&want2, &got2), "{:?} twice", spec.kind);
        let composed: Vec<Vec<usize>> = keep
            .iter()
            .zip(&keep2)
            .map(|(a, b)| b.iter().map(|&i| a[i]).collect())
            .collect();
        assert_eq!(s2.kept, compose(&spec, &composed).unwrap().kept);
    }
}

/// MACs and parameters against hand counts (28x28 images, 10 classes for
/// the fully connected nets and the CNN; 32x32x3 for ResNet-20).
#[test]
fn costs_match_hand_counts() {
    let dev = Default::default();
    let count = |kind, ch, hw, kept: Option<Vec<Vec<usize>>>| {
        let (cfg, mut spec) = setup(kind, ch, hw);
        spec.kept = kept;
        let m = model::build::<Cpu>(&cfg, &spec, 10, &dev).unwrap();
        cost(&m, hw, hw, 10, spec.feature_dim())
    };
    // CNN: conv1 32x1x25x28x28, conv2 64x32x25x14x14, fc 3136x128, head 128x10.
    let c = count(NetKind::Cnn, 1, 28, None);
    assert_eq!(c.macs, 627_200 + 10_035_200 + 401_408 + 1_280);
    // weights + biases: 832 + 51,264 + 401,536 + the softmax head's 1,290.
    assert_eq!(c.params, 832 + 51_264 + 401_536 + 1_290);
    // Pruned to 20 and 40 channels.
    let c = count(
        NetKind::Cnn,
        1,
        28,
        Some(vec![(0..20).collect(), (0..40).collect()]),
    );
    assert_eq!(c.macs, 392_000 + 3_920_000 + 250_880 + 1_280);
    assert_eq!(
        c.params,
        (500 + 20) + (20_000 + 40) + (250_880 + 128) + 1_290
    );
    // MLP: 784x256 + 256x128, head.
    let c = count(NetKind::Mlp, 1, 28, None);
    assert_eq!(c.macs, 200_704 + 32_768 + 1_280);
    assert_eq!(c.params, 200_960 + 32_896 + 1_290);
    // LeNet++ (D = 3): six 5x5 convs at 28, 28, 14, 14, 7, 7; fc 128x3x3 -> 3.
    let c = count(NetKind::Lenet, 1, 28, None);
    let convs = 32 * 25 * 784
        + 32 * 32 * 25 * 784
        + 64 * 32 * 25 * 196
        + 64 * 64 * 25 * 196
        + 128 * 64 * 25 * 49
        + 128 * 128 * 25 * 49;
    assert_eq!(c.macs, (convs + 1152 * 3 + 3 * 10) as u64);
    // ResNet-20 on 32x32x3: the well-known 40.55 M MACs, + 64 x 10.
    let c = count(NetKind::Resnet20, 3, 32, None);
    assert_eq!(c.macs, 40_550_400 + 640);
    // Convs 0.2697 M weights; BN gamma/beta 2 x (16 + 6x16 + 6x32 + 6x64); head 650.
    let convs =
        3 * 16 * 9 + 6 * 16 * 16 * 9 + (16 * 32 + 5 * 32 * 32) * 9 + (32 * 64 + 5 * 64 * 64) * 9;
    assert_eq!(c.params, (convs + 2 * (16 + 96 + 192 + 384) + 650) as u64);
}

/// The groups the spec lists for the full backbone are the backbone's.
#[test]
fn full_groups_are_the_backbones_groups_and_bad_kept_lists_are_refused() {
    let dev = Default::default();
    for (_, spec) in nets() {
        let net = spec.init::<Cpu>(&dev);
        let got: Vec<(String, usize)> = net
            .channel_groups()
            .iter()
            .map(|g| (g.name.clone(), g.channels))
            .collect();
        assert_eq!(got, spec.full_groups(), "{:?}", spec.kind);
    }
    let (_, mut spec) = setup(NetKind::Cnn, 1, 8);
    for (kept, says) in [
        (vec![vec![0]], "has 2"),
        (vec![vec![], vec![0]], "keeps no channel"),
        (vec![vec![1, 0], vec![0]], "increasing"),
        (vec![vec![0], vec![64]], "below 64"),
    ] {
        spec.kept = Some(kept);
        let e = spec.check().unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
}

/// `taylor-fo-bn` is `(dL/dz)^2` with `dL/dz` by central finite
/// differences on the gate (a ResNet in training mode, BatchNorm included;
/// a CNN); without BatchNorm it equals `taylor-fo` (the loss is a function
/// of `z w`, so `dL/dz = sum g w` at `z = 1`).
#[test]
fn taylor_scores_match_finite_differences_on_the_gate() {
    let dev = Default::default();
    for (cfg, spec) in [setup(NetKind::Cnn, 1, 8), setup(NetKind::Resnet20, 3, 8)] {
        let m = model::build::<CpuTrain>(&cfg, &spec, CLASSES, &dev).unwrap();
        let m = randomised(m, 4, &dev);
        let groups = m.net.channel_groups();
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let x = images::<CpuTrain>(8, &spec, 2, &dev);
        let y = Tensor::<CpuTrain, 1, Int>::from_ints([0, 1, 2, 3, 0, 1, 2, 3], &dev);
        let ones: Vec<Vec<f32>> = groups.iter().map(|g| vec![1.0; g.channels]).collect();
        let loss = |z: &[Vec<f32>]| -> f64 {
            let gates = Gates::<CpuTrain>::from_values(&names, z, &dev);
            let logits = m.head.logits(m.features_with(x.clone(), &gates));
            let l: f32 = crate::heads::cross_entropy(logits, y.clone())
                .into_scalar()
                .elem();
            l as f64
        };
        let gates = Gates::<CpuTrain>::from_values(&names, &ones, &dev).map(|z| z.require_grad());
        let logits = m.head.logits(m.features_with(x.clone(), &gates));
        let grads = crate::heads::cross_entropy(logits, y.clone()).backward();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let loss_of = |m: &Model<CpuTrain>| {
            let logits = m.head.logits(m.features_with(x.clone(), &gates));
            crate::heads::cross_entropy(logits, y.clone())
        };
        let score = |c, rng: &mut ChaCha8Rng| {
            batch_scores(c, &m, &groups, &gates, Some(&grads), rng, &loss_of).unwrap()
        };
        let bn = score(Criterion::TaylorFoBn, &mut rng);
        let fo = score(Criterion::TaylorFo, &mut rng);
        // Small steps: ReLU kinks make the central difference's error
        // shrink only linearly in eps (ResNet's stage1 gate, whose four
        // sites move together: 9 % off at 2e-3, 4.5 % at 1e-3 and 5e-4,
        // within 3 % at 2.5e-4 and 1.25e-4).
        let eps: f32 = 2.5e-4;
        let mut checked = 0;
        for (g, group) in groups.iter().enumerate() {
            let sites = if group.tied { group.producers.len() } else { 1 } as f64;
            let top = (0..group.channels)
                .max_by(|&a, &b| bn[g][a].total_cmp(&bn[g][b]))
                .unwrap();
            for k in [0, top] {
                let mut up = ones.clone();
                up[g][k] += eps;
                let mut down = ones.clone();
                down[g][k] -= eps;
                let fd = ((loss(&up) - loss(&down)) / (2.0 * eps as f64)).abs();
                let ad = (bn[g][k] * sites).sqrt();
                assert!(
                    // f32 losses carry ~5e-7 of rounding: ~1e-3 on the
                    // differences at this eps.
                    (ad - fd).abs() <= 2e-3 + 0.03 * fd,
                    "{:?} {} [{k}]: |dL/dz| {ad} vs finite differences {fd}",
                    spec.kind,
                    group.name
                );
                checked += 1;
                if spec.kind == NetKind::Cnn {
                    assert!(
                        (fo[g][k] - bn[g][k]).abs() <= 1e-9 + 1e-3 * bn[g][k],
                        "{} [{k}]: taylor-fo {} vs taylor-fo-bn {}",
                        group.name,
                        fo[g][k],
                        bn[g][k]
                    );
                }
            }
        }
        assert!(checked >= 4);
    }
}

/// A float parameter of `model` by path, flattened, inside the autodiff
/// graph.
fn param_of<B: Backend>(model: &Model<B>, name: &str) -> Tensor<B, 1> {
    struct Find<B: Backend> {
        path: Vec<String>,
        want: String,
        found: Option<Tensor<B, 1>>,
    }
    impl<B: Backend> burn::module::ModuleVisitor<B> for Find<B> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            if self.path.join(".") == self.want {
                let t = p.val();
                let n = t.shape().num_elements();
                self.found = Some(t.reshape([n]));
            }
        }
    }
    let mut f = Find {
        path: vec![],
        want: name.to_string(),
        found: None,
    };
    burn::module::Module::visit(model, &mut f);
    f.found.unwrap_or_else(|| panic!("no {name}"))
}

/// Hutchinson's Hessian diagonal on a loss of known Hessian: with
/// `L = sum a w^2 + sum b w^3` of conv1's weights (diagonal Hessian
/// `2a + 6bw`) every probe gives it exactly, and the other producers get 0;
/// adding `c (sum w)^2` (off-diagonal terms), the mean over probes is
/// `2a + 6bw + 2c`.
#[test]
fn the_hessian_diagonal_estimate_matches_a_closed_form() {
    use super::engine::{hessian_diagonal, producer_names, producer_tensors};
    let dev = Default::default();
    let (cfg, spec) = setup(NetKind::Cnn, 1, 8);
    let m = model::build::<CpuTrain>(&cfg, &spec, CLASSES, &dev).unwrap();
    let m = randomised(m, 8, &dev);
    let groups = m.net.channel_groups();
    let name = "net.Cnn.conv1.weight";
    let n = 32 * 25;
    let a: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
    let (ta, tb) = (
        Tensor::<CpuTrain, 1>::from_floats(a.as_slice(), &dev),
        Tensor::<CpuTrain, 1>::from_floats(b.as_slice(), &dev),
    );
    let want = producer_names(&m, &groups);
    let held = producer_tensors(&m, &want, None).unwrap();
    let w = held[name].w.clone();
    let exact: Vec<f32> = (0..n).map(|i| 2.0 * a[i] + 6.0 * b[i] * w[i]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for c in [0.0f32, 0.01] {
        let loss_of = |m: &Model<CpuTrain>| {
            let w = param_of(m, name);
            let quad = (w.clone() * w.clone() * ta.clone()).sum();
            let cubic = (w.clone().powf_scalar(3.0) * tb.clone()).sum();
            let coupled = w.sum().powf_scalar(2.0) * c;
            quad + cubic + coupled
        };
        let probes = if c == 0.0 { 1 } else { 400 };
        let mut mean = vec![0.0f64; n];
        for _ in 0..probes {
            let h = hessian_diagonal(&m, &held, &loss_of, &mut rng, &dev).unwrap();
            for (m, v) in mean.iter_mut().zip(&h[name]) {
                *m += *v as f64 / probes as f64;
            }
            // The other producers do not enter this loss.
            assert!(h["net.Cnn.conv2.weight"].iter().all(|v| v.abs() < 1e-3));
        }
        // Per coordinate the off-diagonal terms add `2c v_i sum_j v_j`, of
        // standard deviation `2c sqrt(n - 1)` per probe: 4 sigma allowed.
        let sigma = 2.0 * c as f64 * ((n - 1) as f64 / probes as f64).sqrt();
        for i in (0..n).step_by(37) {
            let want = exact[i] as f64 + 2.0 * c as f64;
            let tol = 1e-3 * want.abs() + 1e-3 + 4.0 * sigma;
            assert!(
                (mean[i] - want).abs() <= tol,
                "c {c} [{i}]: {} vs {want}",
                mean[i]
            );
        }
        // Over all coordinates the noise averages out (std about
        // 2c sqrt(2 / probes)) and the shift 2c of the coupling shows.
        let shift: f64 = (0..n).map(|i| mean[i] - exact[i] as f64).sum::<f64>() / n as f64;
        assert!(
            (shift - 2.0 * c as f64).abs() <= 1e-3 + 0.25 * 2.0 * c as f64,
            "c {c}: mean shift {shift}"
        );
    }
}
