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

/// Regression (#15): two processes on one `--out` both passed the "never
/// overwrite" check and both wrote the run. The directory is locked by the
/// process that writes it: a second `train` or `study` fails at once,
/// naming the directory and the holder (this test process holds it), and
/// writes nothing.
#[test]
fn a_locked_run_or_study_directory_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let held = symfeat::run_dir::lock(&run, "run").unwrap();
    let holder = format!("run pid {}", std::process::id());
    let out = run.to_str().unwrap();
    fails_with(
        &[
            "train",
            "--dataset",
            "mnist",
            "--data",
            "/nonexistent",
            "--out",
            out,
        ],
        &[out, "being written by another symfeat process", &holder],
    );
    assert!(
        !run.join("config.toml").exists(),
        "a refused run wrote its config"
    );
    drop(held);
    // Free again: the same command now gets past the lock (to the data).
    fails_with(
        &[
            "train",
            "--dataset",
            "mnist",
            "--data",
            "/nonexistent",
            "--out",
            out,
        ],
        &["/nonexistent"],
    );

    // A study's own lock is held only to check and write study.toml (#19:
    // many processes share a study): a held one is waited for, then taken.
    let study = dir.path().join("study");
    std::fs::create_dir_all(&study).unwrap();
    let cfg = dir.path().join("s.toml");
    std::fs::write(
        &cfg,
        "heads = ['softmax']\nseeds = [0]\n[train]\nepochs = 1\ndataset = 'mnist'\ndata = '/nonexistent'\n",
    )
    .unwrap();
    let held = symfeat::run_dir::lock(&study, "study").unwrap();
    let start = std::time::Instant::now();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("symfeat"))
        .args(["study", "--config", cfg.to_str().unwrap(), "--out"])
        .arg(&study)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert!(
        !study.join("study.toml").exists(),
        "study.toml written under a held lock"
    );
    drop(held);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(start.elapsed() >= std::time::Duration::from_millis(1000));
    assert!(study.join("study.toml").exists(), "{err}");
    // Past the lock, to the data.
    assert!(err.contains("/nonexistent"), "{err}");
}

/// A killed holder releases its lock (the OS does): a training run killed
/// with SIGKILL mid-run leaves a directory the next process can lock and
/// resume.
#[cfg(unix)]
#[test]
fn a_killed_holder_leaves_the_directory_free() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_synthetic_mnist(&data, 2000, 200, 1);
    let run = dir.path().join("run");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_symfeat"))
        .args([
            "train",
            "--dataset",
            "mnist",
            "--net",
            "mlp",
            "--epochs",
            "200",
            "--threads",
            "1",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it holds the lock (its lock file names it).
    let pid = format!("run pid {}", child.id());
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(run.join(symfeat::run_dir::LOCK))
        .is_ok_and(|h| h.starts_with(&pid))
    {
        assert!(
            start.elapsed().as_secs() < 60,
            "the child never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let e = symfeat::run_dir::lock(&run, "run").unwrap_err().to_string();
    assert!(e.contains(&pid), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
    symfeat::run_dir::lock(&run, "run").unwrap();
}

/// `symfeat report` on one run's directory (not a study): the same report
/// files, for a run of one.
#[test]
fn report_reads_a_single_run_directory() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    common::write_synthetic_mnist(&data, 64, 32, 5);
    let run = d.path().join("run");
    common::train_run(
        &data,
        &run,
        &["--net", "mlp", "--head", "normface", "--epochs", "2"],
    );
    let o = symfeat().arg("report").arg(&run).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["variants"][0]["head"], "normface");
    assert!(run.join("report.html").exists());
    assert!(String::from_utf8_lossy(&o.stdout).contains("normface"));
}
