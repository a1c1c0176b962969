//! End-to-end training on tiny synthetic data written by the test, and a
//! short run on real Fashion-MNIST.

mod common;

use std::path::Path;
use symfeat::run_dir::Checkpoint;
use symfeat::train::{TrainConfig, train};

fn tiny_config(data: &Path, out: &Path, head: &str) -> TrainConfig {
    TrainConfig {
        dataset: "mnist".into(),
        data: Some(data.to_path_buf()),
        net: "mlp".into(),
        head: head.into(),
        epochs: 3,
        batch: 32,
        lr: 0.05,
        threads: Some(2),
        out: out.to_path_buf(),
        ..Default::default()
    }
}

#[test]
fn both_heads_learn_synthetic_data_well_above_chance() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 600, 200, 1);
    for head in ["softmax", "symmetrical"] {
        let out = dir.path().join(format!("run-{head}"));
        let cfg = tiny_config(dir.path(), &out, head).check().unwrap();
        let h = train(&cfg, false).unwrap().history;
        assert_eq!(h.len(), 3);
        let (first, last) = (&h[0], &h[2]);
        assert!(
            last.train_loss < first.train_loss,
            "{head}: loss did not go down: {h:?}"
        );
        assert!(
            last.test_acc > 0.5,
            "{head}: test accuracy {} (chance 0.1)",
            last.test_acc
        );
        for f in [
            "config.toml",
            "metrics.jsonl",
            "checkpoint.bin",
            "model.safetensors",
        ] {
            assert!(out.join(f).exists(), "{head}: {f} missing");
        }
        let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 3);
        for key in [
            "epoch",
            "lr",
            "train_loss",
            "train_acc",
            "test_loss",
            "test_acc",
            "seconds",
            "images_per_s",
        ] {
            assert!(
                lines.lines().all(|l| l.contains(&format!("\"{key}\""))),
                "{key} missing"
            );
        }
    }
}

#[test]
fn resume_gives_the_same_metrics_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 300, 100, 2);
    let straight = dir.path().join("straight");
    let mut cfg = tiny_config(dir.path(), &straight, "symmetrical");
    cfg.net = "cnn".into();
    cfg.epochs = 2;
    let full = train(&cfg.check().unwrap(), false).unwrap().history;

    // Interrupted after epoch 1, then resumed from the run's own config.toml.
    let split = dir.path().join("split");
    let first = TrainConfig {
        out: split.clone(),
        epochs: 1,
        ..cfg.clone()
    };
    train(&first.check().unwrap(), false).unwrap();
    let mut again = TrainConfig::from_file(&split.join("config.toml")).unwrap();
    again.epochs = 2;
    let resumed = train(&again.check().unwrap(), true).unwrap().history;

    assert_eq!(resumed.len(), 2);
    for (a, b) in full.iter().zip(&resumed) {
        assert_eq!(a.train_loss, b.train_loss, "epoch {}", a.epoch);
        assert_eq!(a.test_acc, b.test_acc, "epoch {}", a.epoch);
        assert_eq!(a.test_loss, b.test_loss, "epoch {}", a.epoch);
    }
}

#[test]
fn an_existing_run_is_never_overwritten_and_bad_checkpoints_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 64, 32, 3);
    let out = dir.path().join("run");
    let mut cfg = tiny_config(dir.path(), &out, "softmax");
    cfg.epochs = 1;
    let valid = cfg.check().unwrap();
    train(&valid, false).unwrap();
    let before = std::fs::read(out.join("checkpoint.bin")).unwrap();
    let err = train(&valid, false).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(std::fs::read(out.join("checkpoint.bin")).unwrap(), before);

    std::fs::write(out.join("checkpoint.bin"), &before[..before.len() / 2]).unwrap();
    let err = train(&valid, true).unwrap_err().to_string();
    assert!(err.contains("checkpoint.bin"), "{err}");

    let fresh = dir.path().join("fresh");
    let err = train(&TrainConfig { out: fresh, ..cfg }.check().unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no checkpoint"), "{err}");
}

#[test]
fn divergence_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 128, 32, 4);
    let out = dir.path().join("run");
    let mut cfg = tiny_config(dir.path(), &out, "softmax");
    cfg.epochs = 1;
    train(&cfg.check().unwrap(), false).unwrap();
    let good = std::fs::read(out.join("checkpoint.bin")).unwrap();

    cfg.epochs = 2;
    cfg.lr = 1e30;
    let err = train(&cfg.check().unwrap(), true).unwrap_err().to_string();
    assert!(
        err.contains("diverged") && err.contains("epoch 2") && err.contains("step"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("checkpoint.bin")).unwrap(), good);
    let ck = Checkpoint::load(&out.join("checkpoint.bin")).unwrap();
    assert_eq!(ck.state.epochs_done, 1);
}

/// Regression (issue #7): when the probe's analysis is undefined (here every
/// image is the same, so every class mean is the same), the probe line says
/// why and the training goes on; it used to stop the run with a geometry
/// error.
#[test]
fn an_undefined_probe_is_recorded_and_training_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    for (prefix, n) in [("train", 40), ("t10k", 20)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            dir.path().join(format!("{prefix}-images-idx3-ubyte")),
            common::idx_images(&vec![0; n * 784], n, 28, 28),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(format!("{prefix}-labels-idx1-ubyte")),
            common::idx_labels(&labels),
        )
        .unwrap();
    }
    let out = dir.path().join("run");
    let mut cfg = tiny_config(dir.path(), &out, "symmetrical");
    cfg.epochs = 1;
    let h = train(&cfg.check().unwrap(), false).unwrap().history;
    assert_eq!(h.len(), 1);
    let probe = std::fs::read_to_string(out.join("probe.jsonl")).unwrap();
    assert_eq!(probe.lines().count(), 2, "{probe}");
    for line in probe.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let a = &v["analysis"];
        assert!(
            a["nc"].is_object() || a["skipped"].is_string(),
            "neither an analysis nor a reason: {line}"
        );
    }
}

/// A few hundred SGD steps of the reference CNN on real Fashion-MNIST.
#[test]
#[cfg_attr(
    not(has_fashion_mnist),
    ignore = "needs Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist (README line 1 installs it)"
)]
fn fashion_mnist_subset_trains_the_reference_cnn() {
    let out = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        train_limit: Some(9600),
        test_limit: Some(2000),
        epochs: 2,
        batch: 64,
        threads: Some(2),
        out: out.path().join("run"),
        ..Default::default()
    };
    let h = train(&cfg.check().unwrap(), false).unwrap().history; // 300 steps
    let acc = h.last().unwrap().test_acc;
    assert!(acc > 0.75, "test accuracy {acc} after 300 steps");
}

/// CIFAR-10 binary batches of `per_batch` records each: class `c` is a
/// fixed random image plus noise (easy without augmentation).
fn write_synthetic_cifar10(dir: &Path, per_batch: usize, test: usize) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let templates: Vec<Vec<u8>> = (0..10)
        .map(|_| (0..3072).map(|_| (next() % 256) as u8).collect())
        .collect();
    let mut batch = |name: &str, n: usize| {
        let mut bytes = Vec::with_capacity(n * 3073);
        for _ in 0..n {
            let c = (next() % 10) as usize;
            bytes.push(c as u8);
            for &t in &templates[c] {
                let noise = (next() % 81) as i32 - 40;
                bytes.push((t as i32 + noise).clamp(0, 255) as u8);
            }
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for i in 1..=5 {
        batch(&format!("data_batch_{i}.bin"), per_batch);
    }
    batch("test_batch.bin", test);
}

#[test]
fn resnet20_learns_synthetic_cifar_and_evaluates_with_running_statistics() {
    // Test accuracy comes from evaluation mode (BatchNorm2d's running
    // statistics), so it also checks that those are kept and used.
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_cifar10(dir.path(), 120, 200);
    let out = dir.path().join("run");
    let cfg = TrainConfig {
        dataset: "cifar10".into(),
        net: "resnet20".into(),
        augment: Some(false),
        epochs: 2,
        ..tiny_config(dir.path(), &out, "softmax")
    };
    let h = train(&cfg.check().unwrap(), false).unwrap().history;
    let last = h.last().unwrap();
    assert!(
        last.test_acc > 0.5,
        "test accuracy {} (chance 0.1): {h:?}",
        last.test_acc
    );
}

/// Reads an NPY float32 matrix written by `--export-features`.
fn read_f32_npy(path: &Path) -> (Vec<f32>, usize, usize) {
    let r = symfeat::npy::MatrixReader::open(path, "test").unwrap();
    let (v, n, d) = r.read_all().unwrap();
    (v.into_iter().map(|x| x as f32).collect(), n, d)
}

#[test]
fn feature_act_changes_what_the_head_sees_on_every_net_and_resume_refuses_a_change() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 96, 64, 4);
    let cifar = dir.path().join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    write_synthetic_cifar10(&cifar, 24, 64);
    for net in ["mlp", "cnn", "lenet", "resnet20"] {
        let mut negatives = vec![];
        for act in ["relu", "linear", "bn"] {
            let out = dir.path().join(format!("{net}-{act}"));
            let mut cfg = tiny_config(dir.path(), &out, "symmetrical");
            cfg.net = net.into();
            cfg.feature_act = act.into();
            cfg.epochs = 1;
            cfg.export_features = true;
            if net == "resnet20" {
                cfg.dataset = "cifar10".into();
                cfg.data = Some(cifar.clone());
                cfg.augment = Some(false);
            }
            let h = train(&cfg.check().unwrap(), false).unwrap().history;
            assert!(h[0].train_loss.is_finite(), "{net} {act}");
            let (x, n, d) = read_f32_npy(&out.join("features.npy"));
            let want_d = match net {
                "lenet" => 2,
                "resnet20" => 64,
                _ => 128,
            };
            assert_eq!((n, d), (64, want_d), "{net} {act}");
            negatives.push(x.iter().filter(|v| **v < 0.0).count());
            // The model file carries the BatchNorm1d exactly when asked.
            let st = std::fs::read(out.join("model.safetensors")).unwrap();
            let names = safetensors::SafeTensors::deserialize(&st)
                .unwrap()
                .names()
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            let has_bn = names.iter().any(|k| k.starts_with("feature_bn."));
            assert_eq!(has_bn, act == "bn", "{net} {act}: {names:?}");
            // One more epoch with another feature_act: refused, run kept.
            let before = std::fs::read(out.join("checkpoint.bin")).unwrap();
            let mut other = TrainConfig::from_file(&out.join("config.toml")).unwrap();
            other.epochs = 2;
            other.feature_act = if act == "relu" { "linear" } else { "relu" }.into();
            let err = format!("{:#}", train(&other.check().unwrap(), true).unwrap_err());
            assert!(err.contains("feature-act"), "{net} {act}: {err}");
            assert_eq!(std::fs::read(out.join("checkpoint.bin")).unwrap(), before);
            // The same feature_act resumes.
            other.feature_act = act.into();
            assert_eq!(
                train(&other.check().unwrap(), true).unwrap().history.len(),
                2
            );
        }
        // relu: never negative (LeNet's PReLU may be); linear and bn: signed.
        if net != "lenet" {
            assert_eq!(negatives[0], 0, "{net} relu features: {negatives:?}");
        }
        assert!(negatives[1] > 0 && negatives[2] > 0, "{net}: {negatives:?}");
    }
}

#[test]
fn a_plateaued_run_stops_early_and_counts_as_finished() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 300, 100, 6);
    let out = dir.path().join("run");
    let mut cfg = tiny_config(dir.path(), &out, "softmax");
    cfg.epochs = 40;
    cfg.plateau_window = 3;
    cfg.plateau_slope = 0.01;
    cfg.export_features = true;
    cfg.probe = false;
    let h = train(&cfg.check().unwrap(), false).unwrap().history;
    assert!(
        h.len() < 40,
        "synthetic data plateaus early: {} epochs",
        h.len()
    );
    let accs: Vec<f64> = h.iter().map(|m| m.test_acc).collect();
    let c = symfeat::statistics::convergence(&accs, 3, 0.01).unwrap();
    assert!(c.converged(), "{c:?}");
    // A resume trains nothing more, and the study sees it as finished.
    assert_eq!(
        train(&cfg.check().unwrap(), true).unwrap().history.len(),
        h.len()
    );
    assert_eq!(
        symfeat::run_dir::run_status(&out, &cfg),
        symfeat::run_dir::RunStatus::Finished
    );
}
