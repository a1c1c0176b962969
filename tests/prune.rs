//! `symfeat prune` end to end on small trained runs: the pruned run is a
//! smaller network that trains on, benchmarks and quantises; several
//! criteria and targets give one run each and a figure; bad input is a
//! clear error that leaves the base run untouched.

mod common;

use assert_cmd::Command;
use std::path::Path;

fn symfeat() -> Command {
    Command::cargo_bin("symfeat").unwrap()
}

fn train_run(data: &Path, out: &Path, net: &str) {
    common::train_run(data, out, &["--net", net, "--epochs", "1"]);
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every file of `dir` with its bytes (to see that nothing changed).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

fn prune(run: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    symfeat()
        .arg("prune")
        .arg(run)
        .arg("--out")
        .arg(out)
        .args(["--threads", "1", "--prune-every", "2", "--bench-batch", "8"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_pruned_cnn_is_smaller_faster_to_count_and_a_normal_run() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 400, 200, 3);
    let base = dir.path().join("base");
    train_run(dir.path(), &base, "cnn");
    let before = snapshot(&base);
    let out = dir.path().join("pruned");
    let o = prune(
        &base,
        &out,
        &[
            "--criterion",
            "taylor-fo-bn",
            "--target-flops",
            "0.6",
            "--finetune-epochs",
            "1",
            "--oracle",
            "12",
            "--oracle-batches",
            "2",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(snapshot(&base), before, "the base run was written");
    let r = json(&out.join("prune.json"));
    for k in [
        "criterion",
        "flops_before",
        "flops_after",
        "params_before",
        "params_after",
        "bytes_before",
        "bytes_after",
        "test_acc_before",
        "test_acc_pruned",
        "test_acc_finetuned",
        "infer_img_s_before",
        "infer_img_s_after",
        "settings",
        "kept",
        "geometry",
    ] {
        assert!(r.get(k).is_some_and(|v| !v.is_null()), "{k} missing in {r}");
    }
    let f = |k: &str| r[k].as_f64().unwrap();
    assert!(f("flops_after") <= 0.6 * f("flops_before"), "{r}");
    assert!(f("params_after") < f("params_before"));
    assert!(f("bytes_after") < f("bytes_before"));
    assert!(
        r["geometry"]["finetuned"]["angle_w_mean_deg"]
            .as_f64()
            .is_some()
    );
    // The oracle's correlations, one per criterion.
    let c = r["oracle"]["correlations"].as_object().unwrap();
    assert_eq!(c.len(), 5, "{c:?}");
    assert_eq!(r["oracle"]["units"].as_u64(), Some(12));
    assert!(r["oracle"]["base_loss"].as_f64().unwrap().is_finite());
    for (name, v) in c {
        // null (NaN) only where the loss changes are all equal (a saturated
        // model); else a correlation.
        let rho = &v["spearman"];
        assert!(
            rho.is_null() || rho.as_f64().is_some_and(|r| (-1.0..=1.0).contains(&r)),
            "{name}: {v}"
        );
    }
    // The log: one line per round, costs falling.
    let log = std::fs::read_to_string(out.join("prune.jsonl")).unwrap();
    let macs: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["macs"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        !macs.is_empty() && macs.windows(2).all(|w| w[1] <= w[0]),
        "{macs:?}"
    );
    // A normal run directory: its config says what was kept; it trains on,
    // benchmarks against the unpruned architecture, quantises.
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("channels_kept"), "{config}");
    let o = symfeat()
        .args([
            "train",
            "--resume",
            "--epochs",
            "2",
            "--threads",
            "1",
            "--config",
        ])
        .arg(out.join("config.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = symfeat()
        .args([
            "bench", "--steps", "1", "--warmup", "0", "--batch", "4", "--run",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for k in [
        "infer_img_s=",
        "unpruned_infer_img_s=",
        "speedup=",
        "macs_ratio=",
    ] {
        assert!(text.contains(k), "{k} missing in {text}");
    }
    let o = symfeat()
        .arg("quantize")
        .arg(&out)
        .args(["--bits", "4", "--threads", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn several_criteria_and_targets_give_one_resnet_run_each_and_a_figure() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 200, 100, 4);
    let base = dir.path().join("base");
    train_run(dir.path(), &base, "resnet20");
    let out = dir.path().join("cmp");
    let o = prune(
        &base,
        &out,
        &[
            "--criterion",
            "weight,random",
            "--target-flops",
            "0.8,0.6",
            "--prune-units",
            "8",
            "--finetune-epochs",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = json(&out.join("prune.json"));
    let runs = all.as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for name in [
        "weight-flops0.80",
        "weight-flops0.60",
        "random-flops0.80",
        "random-flops0.60",
    ] {
        let r = json(&out.join(name).join("prune.json"));
        let t = r["target"].as_f64().unwrap();
        assert!(r["flops_after"].as_f64().unwrap() <= t * r["flops_before"].as_f64().unwrap());
    }
    assert!(out.join("accuracy_vs_flops.svg").exists());
    assert!(out.join("accuracy_vs_flops.png").exists());
}

#[test]
fn bad_prune_input_is_a_clear_error_and_the_base_run_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 100, 50, 5);
    let base = dir.path().join("base");
    train_run(dir.path(), &base, "mlp");
    let before = snapshot(&base);
    let out = dir.path().join("out");
    for (args, says) in [
        (vec!["--target-flops", "0"], "(0, 1]"),
        (vec!["--target-flops", "1.5"], "(0, 1]"),
        (vec!["--target-params=-0.2"], "(0, 1]"),
        (vec![], "--target-flops or --target-params"),
        (
            vec!["--target-flops", "0.5", "--criterion", "magic"],
            "expected one of",
        ),
        (
            vec!["--target-flops", "0.5", "--finetune-epochs", "0"],
            "at least 1",
        ),
        (
            vec!["--target-flops", "0.5", "--prune-units", "0"],
            "at least 1 unit",
        ),
        (vec!["--target-flops", "0.5", "--score-mix", "1"], "[0, 1)"),
        (vec!["--target-flops", "0.5", "--lr=-1"], "positive"),
    ] {
        let o = prune(&base, &out, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // --out the base itself.
    let o = prune(&base, &base, &["--target-flops", "0.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("never written"));
    // Not a run; a run without a model.
    let o = prune(dir.path(), &out, &["--target-flops", "0.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a run directory"));
    // A target that would empty a layer is refused (every group keeps one unit).
    let o = prune(
        &base,
        &out,
        &["--target-flops", "0.001", "--prune-units", "64"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot be reached"), "{err}");
    assert_eq!(snapshot(&base), before, "the base run was written");
    // A model that does not match its config.
    let edited = dir.path().join("edited");
    std::fs::create_dir(&edited).unwrap();
    for f in ["config.toml", "checkpoint.bin"] {
        std::fs::copy(base.join(f), edited.join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(edited.join("config.toml")).unwrap();
    std::fs::write(
        edited.join("config.toml"),
        cfg.replace("net = \"mlp\"", "net = \"cnn\""),
    )
    .unwrap();
    let o = prune(
        &edited,
        &dir.path().join("out2"),
        &["--target-flops", "0.5"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("does not fit"), "{err}");
    // --run of bench on a directory that is not a run.
    let o = symfeat()
        .args(["bench", "--run"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_parameter_target_with_the_second_order_criterion_on_an_mlp() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 200, 100, 6);
    let base = dir.path().join("base");
    train_run(dir.path(), &base, "mlp");
    let out = dir.path().join("p");
    let o = prune(
        &base,
        &out,
        &[
            "--criterion",
            "taylor-so",
            "--target-params",
            "0.5",
            "--prune-units",
            "16",
            "--finetune-epochs",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&out.join("prune.json"));
    assert_eq!(r["criterion"], "taylor-so");
    assert_eq!(r["target_kind"], "params");
    let f = |k: &str| r[k].as_f64().unwrap();
    assert!(f("params_after") <= 0.5 * f("params_before"), "{r}");
    let kept = &r["kept"]["fc1"];
    assert_eq!(kept[1].as_u64(), Some(256));
    assert!(kept[0].as_u64().unwrap() < 128, "{kept}");
}
