//! The GPU-generic path against the CPU backend: burn's generic layers and
//! cubecl's JIT kernels (the CPU backend replaces many of them with
//! symfeat's own kernels), device placement of every tensor, checkpoints
//! and exports read back from device memory, and the probe.
//!
//! These tests run on a Vulkan device: build with `--features vulkan` on a
//! machine with a Vulkan driver (without a GPU, Mesa's lavapipe:
//! `apt-get install mesa-vulkan-drivers`; field notes §9). Without the
//! feature they are reported as ignored. With the feature and no Vulkan
//! device they fail, saying so: a build with the feature is a request to
//! test it.
//!
//! ```sh
//! CARGO_TARGET_DIR=target/vulkan cargo test --release --features vulkan --test gpu
//! ```

mod common;

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::path::Path;

/// f32 on different kernels (cubecl's matmul and reductions against gemm
/// and symfeat's CPU kernels), compounded over at most 4 SGD steps. One step
/// of ResNet-20 differs by 3e-6 of the weights' scale; training is chaotic
/// enough that 20 steps at lr 0.05 amplify that to 1e-1 (measured), so the
/// comparisons stay short and the rate small.
const REL_TOL: f64 = 1e-3;

fn symfeat() -> Command {
    let mut c = Command::cargo_bin("symfeat").unwrap();
    // Mesa warns on stderr when this is unset or unwritable.
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// |a - b| relative to max(|a|, |b|, `floor`).
fn rel(a: f64, b: f64, floor: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(floor)
}

/// Train on `device` into `out`, batch 16, with a 16-image test set
/// evaluated after each epoch; `args` give the net, head, epochs and
/// `--train-limit` (32: two steps an epoch).
fn train(data: &Path, out: &Path, device: &str, args: &[&str]) {
    let o = symfeat()
        .args(["train", "--dataset", "mnist", "--threads", "2"])
        .args(["--batch", "16", "--test-limit", "16"])
        .args(["--eval-batch", "16", "--probe-train-samples", "32"])
        .args(["--lr", "0.02", "--device", device])
        .args(args)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "train --device {device} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every f32 tensor of a safetensors file, by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
        .map(|(name, t)| {
            let v = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, v)
        })
        .collect()
}

/// The largest difference between two weight files, relative to each
/// tensor's largest magnitude.
fn weights_diff(a: &Path, b: &Path) -> f64 {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "{} and {}: other tensors",
        a.display(),
        b.display()
    );
    let mut worst = 0.0f64;
    for (name, va) in &ta {
        let vb = &tb[name];
        assert_eq!(va.len(), vb.len(), "{name}: other sizes");
        // A 1e-2 floor: tensors that start at zero (BatchNorm shifts) are
        // still ~1e-3 after a few steps, and their gradients are sums over
        // the batch and the image with heavy cancellation, in which a ReLU
        // input on the other side of zero (an f32 rounding apart) moves the
        // sum by a whole term. Measured on ResNet-20: after one step they
        // agree to 2e-9 absolute, after two to 2e-6.
        let scale = va.iter().map(|v| v.abs() as f64).fold(1e-2, f64::max);
        for (x, y) in va.iter().zip(vb) {
            worst = worst.max((*x as f64 - *y as f64).abs() / scale);
        }
    }
    worst
}

/// The per-epoch figures of two runs agree: train loss (the mean of the
/// epoch's 2 step losses), test loss and test accuracy. Returns the largest
/// relative loss difference.
fn same_history(cpu: &Path, gpu: &Path, what: &str) -> f64 {
    let (a, b) = (
        lines(&cpu.join("metrics.jsonl")),
        lines(&gpu.join("metrics.jsonl")),
    );
    assert_eq!(a.len(), b.len(), "{what}: epochs");
    let mut worst = 0.0f64;
    for (ea, eb) in a.iter().zip(&b) {
        for key in ["train_loss", "test_loss"] {
            let (x, y) = (ea[key].as_f64().unwrap(), eb[key].as_f64().unwrap());
            let r = rel(x, y, 1e-3);
            assert!(
                r <= REL_TOL,
                "{what}: epoch {} {key}: cpu {x} vulkan {y} (relative {r:.2e})",
                ea["epoch"]
            );
            worst = worst.max(r);
        }
        // 16 test images: a flipped prediction near a tie is 6.25 points.
        let (x, y) = (
            ea["test_acc"].as_f64().unwrap(),
            eb["test_acc"].as_f64().unwrap(),
        );
        assert!(
            (x - y).abs() <= 0.0625 + 1e-9,
            "{what}: epoch {} test_acc {x} vs {y}",
            ea["epoch"]
        );
    }
    worst
}

/// Every head family (softmax, a cosine head, a margin head, the
/// symmetrical layer).
const FAMILIES: [&str; 4] = ["softmax", "normface", "arcface", "symmetrical"];

/// For one net and the given heads: the same start (drawn on the CPU and
/// moved), the same losses over two epochs and the same final weights as on
/// the CPU. The small nets take every head family, the slow ones (on
/// lavapipe) two each (lenet: softmax, arcface; resnet20, the BatchNorm one:
/// normface, symmetrical): every family runs on three backbones, and CI
/// stays short.
fn trains_as_on_the_cpu(net: &str, train_limit: &str, heads: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 32, 16, 21);
    for &head in heads {
        let args = [
            "--net",
            net,
            "--head",
            head,
            "--epochs",
            "2",
            "--train-limit",
            train_limit,
        ];
        let cpu = dir.path().join(format!("{net}-{head}-cpu"));
        let gpu = dir.path().join(format!("{net}-{head}-vulkan"));
        train(dir.path(), &cpu, "cpu", &args);
        train(dir.path(), &gpu, "vulkan", &args);
        let what = format!("{net} / {head}");
        let loss = same_history(&cpu, &gpu, &what);
        let w = weights_diff(
            &cpu.join("model.safetensors"),
            &gpu.join("model.safetensors"),
        );
        eprintln!("{what}: largest relative loss difference {loss:.2e}, weights {w:.2e}");
        assert!(
            w <= REL_TOL,
            "{what}: final weights differ by {w:.2e} of their scale"
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "vulkan"),
    ignore = "needs --features vulkan and a Vulkan device"
)]
fn mlp_trains_on_vulkan_as_on_the_cpu() {
    trains_as_on_the_cpu("mlp", "32", &FAMILIES);
}

#[test]
#[cfg_attr(
    not(feature = "vulkan"),
    ignore = "needs --features vulkan and a Vulkan device"
)]
fn cnn_trains_on_vulkan_as_on_the_cpu() {
    trains_as_on_the_cpu("cnn", "32", &FAMILIES);
}

#[test]
#[cfg_attr(
    not(feature = "vulkan"),
    ignore = "needs --features vulkan and a Vulkan device"
)]
fn lenet_trains_on_vulkan_as_on_the_cpu() {
    trains_as_on_the_cpu("lenet", "32", &["softmax", "arcface"]);
}

#[test]
#[cfg_attr(
    not(feature = "vulkan"),
    ignore = "needs --features vulkan and a Vulkan device"
)]
fn resnet20_trains_on_vulkan_as_on_the_cpu() {
    // One step an epoch: 19 BatchNorm + ReLU layers amplify the f32
    // differences of each step ~1000-fold (measured: 3e-6 of the weights'
    // scale after one step, 5e-3 after two, 3e-2 after three).
    trains_as_on_the_cpu("resnet20", "16", &["normface", "symmetrical"]);
}

/// A checkpoint written from device memory resumes on the device to the
/// weights of an uninterrupted run.
#[test]
#[cfg_attr(
    not(feature = "vulkan"),
    ignore = "needs --features vulkan and a Vulkan device"
)]
fn a_device_checkpoint_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 32, 16, 22);
    let whole = dir.path().join("whole");
    let parts = dir.path().join("parts");
    let args = [
        "--net",
        "cnn",
        "--head",
        "cosface",
        "--momentum",
        "0.9",
        "--train-limit",
        "32",
    ];
    train(
        dir.path(),
        &whole,
        "vulkan",
        &[&args[..], &["--epochs", "4"]].concat(),
    );
    train(
        dir.path(),
        &parts,
        "vulkan",
        &[&args[..], &["--epochs", "2"]].concat(),
    );
    train(
        dir.path(),
        &parts,
        "vulkan",
        &[&args[..], &["--epochs", "4", "--resume"]].concat(),
    );
    let w = weights_diff(
        &whole.join("model.safetensors"),
        &parts.join("model.safetensors"),
    );
    eprintln!("resumed against uninterrupted: weights differ by {w:.2e}");
    assert!(
        w <= 1e-6,
        "resumed weights differ by {w:.2e} of their scale"
    );
    let (a, b) = (
        lines(&whole.join("metrics.jsonl")),
        lines(&parts.join("metrics.jsonl")),
    );
    assert_eq!(a.len(), 4);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        compare_json(x, y, "metrics.jsonl", 1e-6);
    }
}

/// `--export-features` and the probe read from device tensors: the probe
/// lines agree with the CPU's, and `analyze` of the exports gives the CPU's
/// geometry.
#[test]
#[cfg_attr(
    not(feature = "vulkan"),
    ignore = "needs --features vulkan and a Vulkan device"
)]
fn device_exports_and_probe_match_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 32, 16, 23);
    let args = [
        "--net",
        "cnn",
        "--head",
        "normface",
        "--epochs",
        "2",
        "--train-limit",
        "32",
        "--export-features",
    ];
    let cpu = dir.path().join("cpu");
    let gpu = dir.path().join("vulkan");
    train(dir.path(), &cpu, "cpu", &args);
    train(dir.path(), &gpu, "vulkan", &args);
    let (pa, pb) = (
        lines(&cpu.join("probe.jsonl")),
        lines(&gpu.join("probe.jsonl")),
    );
    assert_eq!(pa.len(), pb.len());
    assert!(!pa.is_empty());
    for (a, b) in pa.iter().zip(&pb) {
        compare_json(a, b, "probe.jsonl", 1e-2);
    }
    let analyze = |run: &Path| -> serde_json::Value {
        let o = symfeat()
            .arg("analyze")
            .arg("--features")
            .arg(run.join("features.npy"))
            .arg("--labels")
            .arg(run.join("labels.npy"))
            .arg("--weights")
            .arg(run.join("class_weights.npy"))
            .arg("--json")
            .arg(run.join("analyze.json"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&std::fs::read(run.join("analyze.json")).unwrap()).unwrap()
    };
    compare_json(&analyze(&cpu), &analyze(&gpu), "analyze --json", 1e-2);
}

/// Two JSON values agree: the same structure and strings, numbers within
/// `tol` relative (angles in degrees with a 1-degree floor, others 1e-3).
fn compare_json(a: &serde_json::Value, b: &serde_json::Value, what: &str, tol: f64) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let r = rel(x, y, 1.0);
            assert!(r <= tol, "{what}: {x} vs {y} (relative {r:.2e})");
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{what}"
            );
            for (k, v) in x {
                if matches!(k.as_str(), "seconds" | "images_per_s") {
                    continue;
                }
                compare_json(v, &y[k], &format!("{what}.{k}"), tol);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{what}");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                compare_json(u, v, &format!("{what}[{i}]"), tol);
            }
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}

/// No Vulkan driver: one line naming the cause and the fix, exit 2.
#[test]
#[cfg_attr(not(feature = "vulkan"), ignore = "needs --features vulkan")]
fn no_vulkan_adapter_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 16, 16, 24);
    let o = symfeat()
        .env("VK_ICD_FILENAMES", dir.path().join("none.json"))
        .env("VK_DRIVER_FILES", dir.path().join("none.json"))
        .args([
            "train",
            "--dataset",
            "mnist",
            "--epochs",
            "1",
            "--device",
            "vulkan",
        ])
        .arg("--data")
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no usable Vulkan adapter"), "{err}");
    assert!(err.contains("mesa-vulkan-drivers"), "{err}");
    assert!(
        !err.contains("RUST_BACKTRACE") && !err.contains("panicked"),
        "{err}"
    );
}
