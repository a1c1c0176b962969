//! The binary end to end: clear errors, exit code 2, no panic.

mod common;

use assert_cmd::Command;

fn symfeat() -> Command {
    Command::cargo_bin("symfeat").unwrap()
}

/// Run with `args`, expect exit code 2 and every word of `expect` in stderr.
fn fails_with(args: &[&str], expect: &[&str]) {
    let out = symfeat().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for w in expect {
        assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
    }
}

#[test]
fn bad_options_name_the_option_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let out = out.to_str().unwrap();
    fails_with(
        &["train", "--net", "vgg", "--out", out],
        &["net", "vgg", "cnn"],
    );
    fails_with(
        &["train", "--head", "x", "--out", out],
        &["head", "softmax"],
    );
    fails_with(
        &["train", "--head-param", "s16", "--out", out],
        &["--head-param", "NAME=VALUE"],
    );
    fails_with(
        &[
            "train",
            "--head",
            "symmetrical",
            "--head-param",
            "s=-1",
            "--out",
            out,
        ],
        &["s = -1", "(0, 10000)"],
    );
    fails_with(
        &["train", "--schedule", "multistep", "--out", out],
        &["milestones"],
    );
    fails_with(
        &["train", "--device", "cuda:x", "--out", out],
        &["--device"],
    );
    fails_with(&["train", "--dataset", "mnist", "--out", out], &["--data"]);
    fails_with(
        &[
            "train",
            "--dataset",
            "cifar10",
            "--data",
            "/nonexistent",
            "--out",
            out,
        ],
        &["/nonexistent"],
    );
    fails_with(&["train", "--resume", "--out", out], &["no checkpoint"]);
    fails_with(&["bench", "--model", "vgg"], &["--model", "resnet20"]);
}

#[test]
fn config_files_reject_unknown_keys_and_wrong_types() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "epochs = 2\nlearning_rate = 0.1\n").unwrap();
    fails_with(
        &["train", "--config", p.to_str().unwrap()],
        &["c.toml", "learning_rate"],
    );
    std::fs::write(&p, "epochs = \"two\"\n").unwrap();
    fails_with(
        &["train", "--config", p.to_str().unwrap()],
        &["c.toml", "epochs"],
    );
    fails_with(
        &["train", "--config", "/nonexistent/c.toml"],
        &["/nonexistent/c.toml"],
    );
}

#[test]
fn train_from_the_cli_then_resume_from_its_config() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 128, 64, 9);
    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    let data = dir.path().to_str().unwrap();
    let base = [
        "train",
        "--dataset",
        "mnist",
        "--data",
        data,
        "--net",
        "mlp",
        "--head",
        "symmetrical",
    ];
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        "--epochs",
        "1",
        "--out",
        o,
        "--export-features",
        "--threads",
        "1",
    ]);
    symfeat().args(&args).assert().success();
    for f in [
        "features.npy",
        "labels.npy",
        "class_weights.npy",
        "head_params.npy",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let cfg = out.join("config.toml");
    symfeat()
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--resume",
            "--epochs",
            "2",
        ])
        .assert()
        .success();
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
}

/// A reader that goes away (`symfeat heads list | head -1`) ends the
/// output quietly, never with a panic.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::process::{Command as Std, Stdio};
    let mut child = Std::new(assert_cmd::cargo::cargo_bin("symfeat"))
        .args(["heads", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before the child's first write
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
