//! `symfeat quantize` end to end on a small trained run, and the
//! compressibility regulariser in training.

mod common;

use assert_cmd::Command;
use std::path::Path;

fn symfeat() -> Command {
    Command::cargo_bin("symfeat").unwrap()
}

/// Train a small run (MLP on synthetic MNIST, 2 epochs) into `out`.
fn train_run(data: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["--net", "mlp", "--epochs", "2"];
    args.extend_from_slice(extra);
    common::train_run(data, out, &args);
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn quantize_writes_results_cards_figure_and_models_that_reload_to_the_same_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 400, 200, 9);
    let run = dir.path().join("run");
    train_run(dir.path(), &run, &[]);
    let o = symfeat()
        .arg("quantize")
        .arg(&run)
        .args(["--bits", "1,2,4,8", "--save", "--threads", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let out = run.join("quantize");
    let r = json(&out.join("results.json"));
    let float = r["float"]["test_acc"].as_f64().unwrap();
    assert!(r["float"]["test_loss"].as_f64().is_some());
    let rows = r["results"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "2 schemes x 4 bit widths");
    for row in rows {
        for k in [
            "scheme",
            "bits",
            "test_acc",
            "test_loss",
            "compression_ratio",
            "card",
            "coded_bits",
            "code_bits",
            "angle_w_mean_deg",
            "nc3",
        ] {
            assert!(row.get(k).is_some(), "{k} missing in {row}");
        }
        let bits = row["bits"].as_u64().unwrap() as usize;
        let n = row["quantized_weights"].as_u64().unwrap() as usize;
        assert_eq!(row["code_bits"].as_u64().unwrap() as usize, bits * n);
        let stored = row["stored_bits"].as_u64().unwrap();
        assert_eq!(
            stored,
            row["code_bits"]
                .as_u64()
                .unwrap()
                .min(row["coded_bits"].as_u64().unwrap())
        );
        // The card, Markdown and JSON, with every field.
        let card = row["card"].as_str().unwrap();
        let md = std::fs::read_to_string(out.join(card)).unwrap();
        let cj = json(&out.join(card.replace(".md", ".json")));
        for field in [
            "weight_bits",
            "activation_bits",
            "granularity",
            "symmetric",
            "level_set",
            "batchnorm_folding",
            "first_layer",
            "last_layer",
            "non_matmul_ops",
            "bias_precision",
            "accumulator_precision",
            "calibration_data",
            "training",
            "baseline",
            "result",
            "command",
        ] {
            assert!(
                md.contains(&format!("| {field} |")),
                "{field} not in {card}"
            );
            assert!(
                cj[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field} empty in the JSON card"
            );
        }
        // The saved model reloads to the same accuracy, bit for bit.
        let model = out.join(row["model"].as_str().unwrap());
        let o = symfeat()
            .arg("quantize")
            .arg(&run)
            .arg("--load")
            .arg(&model)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let back: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(back["test_acc"], row["test_acc"], "{}", model.display());
        assert_eq!(back["test_loss"], row["test_loss"], "{}", model.display());
    }
    // 8 bits is the float model within a fraction of a point.
    let at8: Vec<f64> = rows
        .iter()
        .filter(|r| r["bits"] == 8)
        .map(|r| r["test_acc"].as_f64().unwrap())
        .collect();
    for a in at8 {
        assert!((a - float).abs() <= 0.01, "8 bits {a} vs float {float}");
    }
    for f in ["accuracy_vs_bits.png", "accuracy_vs_bits.svg"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // Per output channel: one scale per column of each linear layer's
    // [in, out] weight (fc1 256, fc2 128, the softmax head 10), not per row.
    let ch = dir.path().join("channel");
    let o = symfeat()
        .arg("quantize")
        .arg(&run)
        .args([
            "--schemes",
            "linear",
            "--bits",
            "4",
            "--granularity",
            "channel",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&ch)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&ch.join("results.json"));
    assert_eq!(r["results"][0]["level_bits"], 32 * (256 + 128 + 10));
}

#[test]
fn the_compressibility_regularizer_logs_its_term_sparsity_and_entropy() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 300, 100, 10);
    let run = dir.path().join("run");
    train_run(
        dir.path(),
        &run,
        &["--regularizer", "compressibility", "--reg-weight", "1e-3"],
    );
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for l in text.lines() {
        let m: serde_json::Value = serde_json::from_str(l).unwrap();
        let reg = m["reg_loss"].as_f64().unwrap();
        // 1e-3 x (|w|_1/|w|_2 of fc1 + fc2): between 1e-3 x 2 and 1e-3 x (sqrt(784 256) + sqrt(256 128)).
        assert!(reg > 2e-3 && reg < 1e-3 * (448.0 + 181.1), "{reg}");
        let s = m["sparsity"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s));
        assert!(m["weight_entropy"].as_f64().unwrap() > 0.0);
    }
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        cfg.contains("regularizer = \"compressibility\"") && cfg.contains("reg_weight = 0.001"),
        "{cfg}"
    );
    // Without a regulariser, neither the keys nor the options are written.
    let plain = dir.path().join("plain");
    train_run(dir.path(), &plain, &[]);
    let text = std::fs::read_to_string(plain.join("metrics.jsonl")).unwrap();
    assert!(!text.contains("reg_loss") && !text.contains("sparsity"));
    let cfg = std::fs::read_to_string(plain.join("config.toml")).unwrap();
    assert!(!cfg.contains("regularizer"), "{cfg}");
}
