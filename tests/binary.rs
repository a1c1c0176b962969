//! Binary networks end to end: `train --binary`, ReCU's diagnostics in
//! metrics.jsonl, the packed export and `bench --run DIR --packed` (the
//! bit-packed model predicts what the trained, simulated model predicts on
//! every test image), resume, the probe and `analyze` on a binary run.

mod common;

use assert_cmd::Command;
use std::path::Path;

fn symfeat() -> Command {
    Command::cargo_bin("symfeat").unwrap()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `key=value` lines of a command's stdout.
fn kv(out: &[u8]) -> std::collections::HashMap<String, String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Packed against float on the run's whole test set: the same argmax for
/// every image and the same logits, with the sizes and speeds printed.
fn check_packed(run: &Path, n_test: usize) {
    let o = symfeat()
        .args(["bench", "--run"])
        .arg(run)
        .args([
            "--packed",
            "--batch",
            "16",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = kv(&o.stdout);
    assert_eq!(m["argmax_agreement"], format!("{n_test}/{n_test}"), "{m:?}");
    assert_eq!(m["max_logit_diff"], "0e0", "{m:?}");
    for k in ["packed_infer_img_s", "float_infer_img_s"] {
        assert!(m[k].parse::<f64>().unwrap() > 0.0, "{k}");
    }
    let (f, p): (usize, usize) = (
        m["binary_weight_bytes_f32"].parse().unwrap(),
        m["binary_weight_bytes_packed"].parse().unwrap(),
    );
    assert!(p > 0 && f >= 16 * p, "f32 {f} vs packed {p}");
    let (pf, ff): (u64, u64) = (
        m["packed_file_bytes"].parse().unwrap(),
        m["float_file_bytes"].parse().unwrap(),
    );
    assert!(pf < ff, "packed file {pf} vs model {ff}");
}

#[test]
fn binary_cnn_trains_logs_diagnostics_resumes_and_runs_packed() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 320, 120, 5);
    let run = dir.path().join("recu");
    common::train_run(
        dir.path(),
        &run,
        &[
            "--net",
            "cnn",
            "--binary",
            "recu",
            "--epochs",
            "2",
            "--export-features",
        ],
    );
    let m = lines(&run.join("metrics.jsonl"));
    assert_eq!(m.len(), 2);
    for (e, line) in m.iter().enumerate() {
        for k in [
            "dead_weight_fraction",
            "quant_error",
            "weight_entropy",
            "tau",
            "frozen_sign_fraction",
        ] {
            let v = line[k]
                .as_f64()
                .unwrap_or_else(|| panic!("{k} missing in {line}"));
            assert!(v.is_finite() && v >= 0.0, "{k} = {v}");
        }
        let dead = line["dead_weight_fraction"].as_f64().unwrap();
        assert!(dead > 0.0 && dead < 1.0, "{dead}");
        assert!(line["weight_entropy"].as_f64().unwrap() <= 1.0 + 1e-9);
        // tau from 0.85 rising (2 epochs: e^(1/2) of the way).
        let tau = line["tau"].as_f64().unwrap();
        let want = 0.85 + 0.14 * ((e as f64 / 2.0).exp() - 1.0) / (std::f64::consts::E - 1.0);
        assert!((tau - want).abs() < 1e-9, "{tau} {want}");
    }
    assert!(m[1]["test_acc"].as_f64().unwrap() > 0.3, "{}", m[1]);
    assert!(run.join("packed.safetensors").exists());
    assert_eq!(
        lines(&run.join("probe.jsonl")).len(),
        4,
        "test + train per epoch"
    );
    check_packed(&run, 120);
    // The exports of a binary run go through analyze (the head is float).
    let o = symfeat()
        .arg("analyze")
        .arg("--features")
        .arg(run.join("features.npy"))
        .arg("--labels")
        .arg(run.join("labels.npy"))
        .arg("--weights")
        .arg(run.join("class_weights.npy"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Resume to 3 epochs; a resume that changes `binary` is refused.
    let cfg = run.join("config.toml");
    let o = symfeat()
        .args(["train", "--config"])
        .arg(&cfg)
        .args(["--resume", "--epochs", "3", "--binary", "sign"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("binary") && err.contains("recu"), "{err}");
    let o = symfeat()
        .args(["train", "--config"])
        .arg(&cfg)
        .args(["--resume", "--epochs", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines(&run.join("metrics.jsonl")).len(), 3);
    check_packed(&run, 120);
}

#[test]
fn binary_mlp_and_resnet_run_packed_like_their_simulation() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 160, 64, 8);
    for (net, binary) in [("mlp", "sign"), ("resnet20", "recu")] {
        let run = dir.path().join(format!("{net}-{binary}"));
        common::train_run(
            dir.path(),
            &run,
            &[
                "--net",
                net,
                "--binary",
                binary,
                "--epochs",
                "1",
                "--feature-act",
                "linear",
            ],
        );
        let m = lines(&run.join("metrics.jsonl"));
        assert!(m[0]["dead_weight_fraction"].as_f64().is_some(), "{net}");
        check_packed(&run, 64);
    }
    // A float run logs none of the binary keys.
    let run = dir.path().join("float");
    common::train_run(dir.path(), &run, &["--net", "mlp", "--epochs", "1"]);
    let m = lines(&run.join("metrics.jsonl"));
    for k in [
        "dead_weight_fraction",
        "quant_error",
        "tau",
        "weight_entropy",
    ] {
        assert!(m[0].get(k).is_none(), "{k} in a float run");
    }
    assert!(!run.join("packed.safetensors").exists());
}

/// A study of float, sign and recu variants of one head: the report reads
/// the binary runs like any other (the head is float), so it shows how
/// binarising the backbone moves the class weights relative to the centers.
#[test]
fn a_study_compares_float_and_binary_variants() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 200, 80, 4);
    let cfg = dir.path().join("study.toml");
    let text = format!(
        "seeds = [0]\n[train]\ndataset = \"mnist\"\ndata = {:?}\nnet = \"mlp\"\nepochs = 2\nbatch = 32\nthreads = 1\nprobe_train_samples = 50\n\
         [[variants]]\nname = \"float\"\nhead = \"normface\"\n\
         [[variants]]\nname = \"sign\"\nhead = \"normface\"\ntrain = {{ binary = \"sign\" }}\n\
         [[variants]]\nname = \"recu\"\nhead = \"normface\"\ntrain = {{ binary = \"recu\", tau_min = 0.8 }}\n\
         [[variants]]\nname = \"arch\"\nhead = \"normface\"\ntrain = {{ binary = \"float-arch\" }}\n",
        dir.path().display().to_string()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("study");
    let o = symfeat()
        .args(["study", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let v = s["variants"].as_array().unwrap();
    assert_eq!(v.len(), 4);
    let runs = out.join("runs");
    let find = |name: &str| {
        std::fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(&format!("-{name}-"))
            })
            .unwrap_or_else(|| panic!("no {name} run in {}", runs.display()))
    };
    // The float control of the binary architecture: float layers, no
    // binary diagnostics, nothing to pack.
    let arch = find("arch");
    assert!(
        std::fs::read_to_string(arch.join("config.toml"))
            .unwrap()
            .contains("binary = \"float-arch\"")
    );
    assert!(!arch.join("packed.safetensors").exists());
    assert!(
        lines(&arch.join("metrics.jsonl"))[0]
            .get("dead_weight_fraction")
            .is_none()
    );
    for name in ["sign", "recu"] {
        let dir = find(name);
        let c = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        assert!(c.contains(&format!("binary = \"{name}\"")), "{c}");
        assert!(dir.join("packed.safetensors").exists());
        let m = lines(&dir.join("metrics.jsonl"));
        assert!(m[0]["dead_weight_fraction"].as_f64().is_some());
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for name in ["float", "sign", "recu", "arch"] {
        assert!(md.contains(name), "{name} not in the summary");
    }
}
