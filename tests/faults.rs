//! Faults (issue #7): a full disk under every atomic writer, and a training
//! run killed with SIGKILL at several points, then resumed.
//!
//! The full disk is simulated without root: the binary runs with
//! `RLIMIT_FSIZE` lowered and `SIGXFSZ` ignored, so a write past the limit
//! fails with EFBIG, as a write to a full disk fails with ENOSPC. Each writer
//! must then stop with exit code 2 and an error naming the file, leave the
//! previous complete file (if any) untouched and no partial file under the
//! final name, nor a stray temporary file.

mod common;

use ndarray::{Array1, Array2};
use ndarray_npy::{read_npy, write_npy};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use symfeat::run_dir::{Checkpoint, EpochMetrics, ProbeLine};
use symfeat::train::TrainConfig;

const BIN: &str = env!("CARGO_BIN_EXE_symfeat");

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `symfeat train` on the synthetic set in `data`, run directory `out`.
fn train_args(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = strings(&[
        "train",
        "--dataset",
        "mnist",
        "--net",
        "mlp",
        "--batch",
        "16",
        "--threads",
        "1",
        "--seed",
        "3",
    ]);
    a.extend(["--data".into(), data.display().to_string()]);
    a.extend(["--out".into(), out.display().to_string()]);
    a.extend(strings(extra));
    a
}

fn run(args: &[String]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Run with every file the process writes capped at `limit` bytes.
fn run_on_full_disk(args: &[String], limit: u64) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // An ignored disposition survives exec: the write fails with
            // EFBIG instead of the process being killed by SIGXFSZ.
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Exit code 2, no panic, and an error that names `file` as not written.
fn fails_writing(o: &Output, file: &Path) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let want = format!("cannot write {}", file.display());
    assert!(err.contains(&want), "{want:?} not in: {err}");
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn metrics(dir: &Path) -> Vec<EpochMetrics> {
    fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("metrics.jsonl {l:?}: {e}")))
        .collect()
}

/// Every file of a run directory is complete: each parses as what it is,
/// and nothing else (no temporary file) is there. Returns the epochs of
/// the checkpoint, or None when there is none.
fn check_run_dir(dir: &Path) -> Option<usize> {
    check_run_dir_but(dir, |_| false)
}

/// [`check_run_dir`], skipping the files `skip` names.
fn check_run_dir_but(dir: &Path, skip: impl Fn(&str) -> bool) -> Option<usize> {
    let mut epochs = None;
    for name in names(dir).into_iter().filter(|n| !skip(n)) {
        let p = dir.join(&name);
        match name.as_str() {
            "config.toml" => {
                TrainConfig::from_file(&p).unwrap();
            }
            "metrics.jsonl" => {
                metrics(dir);
            }
            "probe.jsonl" => {
                for l in fs::read_to_string(&p).unwrap().lines() {
                    serde_json::from_str::<ProbeLine>(l).unwrap();
                }
            }
            "checkpoint.bin" => {
                let ck = Checkpoint::load(&p).unwrap();
                assert_eq!(ck.state.history.len(), ck.state.epochs_done);
                epochs = Some(ck.state.epochs_done);
            }
            "model.safetensors" => {
                let bytes = fs::read(&p).unwrap();
                safetensors::SafeTensors::deserialize(&bytes).unwrap();
            }
            "features.npy" | "class_weights.npy" | "head_params.npy" | "bias.npy" => {
                let _: Array2<f32> = read_npy(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "labels.npy" => {
                let _: Array1<i64> = read_npy(&p).unwrap();
            }
            // The run-directory lock (released with its holder): the last holder.
            ".symfeat.lock" => {
                let holder = fs::read_to_string(&p).unwrap();
                assert!(holder.starts_with("run pid "), "{holder:?}");
            }
            other => panic!("{}: unexpected file {other}", dir.display()),
        }
    }
    epochs
}

/// A metrics line without its timings, for comparing runs.
fn without_timing(m: &EpochMetrics) -> EpochMetrics {
    EpochMetrics {
        seconds: 0.0,
        images_per_s: 0.0,
        ..m.clone()
    }
}

// ---------------------------------------------------------------- full disk

#[test]
fn a_full_disk_fails_the_checkpoint_write_and_keeps_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 64, 32, 21);
    let out = dir.path().join("run");
    let ck = out.join("checkpoint.bin");
    let args = train_args(dir.path(), &out, &["--epochs", "1", "--probe", "false"]);
    let more = train_args(
        dir.path(),
        &out,
        &["--epochs", "2", "--probe", "false", "--resume"],
    );

    // No checkpoint yet: the first one cannot be written.
    let o = run_on_full_disk(&args, 64 << 10);
    fails_writing(&o, &ck);
    assert_eq!(check_run_dir(&out), None, "{:?}", names(&out));
    assert_eq!(metrics(&out).len(), 1);

    // A complete epoch 1, then the disk fills up while writing epoch 2's.
    fs::remove_dir_all(&out).unwrap();
    ok(&run(&args));
    let before = fs::read(&ck).unwrap();
    let o = run_on_full_disk(&more, 64 << 10);
    fails_writing(&o, &ck);
    assert_eq!(
        fs::read(&ck).unwrap(),
        before,
        "the last checkpoint changed"
    );
    assert_eq!(check_run_dir(&out), Some(1), "{:?}", names(&out));
    // The disk has room again: the run continues from its last checkpoint.
    ok(&run(&more));
    assert_eq!(check_run_dir(&out), Some(2));
    assert_eq!(metrics(&out).len(), 2);
}

#[test]
fn a_full_disk_fails_the_metrics_write_and_keeps_the_old_metrics() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 64, 32, 22);
    let out = dir.path().join("run");
    let args = train_args(dir.path(), &out, &["--epochs", "4", "--probe", "false"]);
    ok(&run(&args));
    let old = fs::read(out.join("metrics.jsonl")).unwrap();
    let ck = fs::read(out.join("checkpoint.bin")).unwrap();
    // Room for config.toml (rewritten on resume) and for 4 metrics lines, not 5.
    let limit = old.len() as u64;
    let config_len = fs::metadata(out.join("config.toml")).unwrap().len();
    assert!(
        config_len < limit,
        "config.toml {config_len} >= {limit} bytes"
    );
    let more = train_args(
        dir.path(),
        &out,
        &["--epochs", "5", "--probe", "false", "--resume"],
    );
    let o = run_on_full_disk(&more, limit);
    fails_writing(&o, &out.join("metrics.jsonl"));
    assert_eq!(fs::read(out.join("metrics.jsonl")).unwrap(), old);
    assert_eq!(fs::read(out.join("checkpoint.bin")).unwrap(), ck);
    assert_eq!(check_run_dir(&out), Some(4), "{:?}", names(&out));
    ok(&run(&more));
    assert_eq!(metrics(&out).len(), 5);
}

#[test]
fn a_full_disk_fails_the_feature_export_and_a_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    // 2,500 test images: features.npy (2,500 x 128 float32) is the largest file.
    common::write_synthetic_mnist(dir.path(), 64, 2500, 23);
    let extra = [
        "--epochs",
        "1",
        "--probe",
        "false",
        "--momentum",
        "0",
        "--export-features",
    ];
    let reference = dir.path().join("reference");
    ok(&run(&train_args(dir.path(), &reference, &extra)));
    let size = |f: &str| fs::metadata(reference.join(f)).unwrap().len();
    let others = names(&reference)
        .iter()
        .filter(|n| *n != "features.npy")
        .map(|n| size(n))
        .max()
        .unwrap();
    let features = size("features.npy");
    assert!(
        others < features,
        "features.npy ({features} bytes) must be the largest file ({others})"
    );

    let out = dir.path().join("run");
    let args = train_args(dir.path(), &out, &extra);
    let o = run_on_full_disk(&args, (others + features) / 2);
    fails_writing(&o, &out.join("features.npy"));
    assert!(!out.join("features.npy").exists());
    assert_eq!(check_run_dir(&out), Some(1), "{:?}", names(&out));
    let weights = fs::read(out.join("model.safetensors")).unwrap();
    assert_eq!(
        weights,
        fs::read(reference.join("model.safetensors")).unwrap()
    );

    // With room again, a resume of the finished run writes the exports.
    let mut again = args.clone();
    again.push("--resume".into());
    ok(&run(&again));
    assert_eq!(check_run_dir(&out), Some(1));
    for f in [
        "features.npy",
        "labels.npy",
        "class_weights.npy",
        "bias.npy",
    ] {
        let (a, b) = (fs::read(out.join(f)).unwrap(), fs::read(reference.join(f)));
        assert_eq!(a, b.unwrap(), "{f}");
    }
}

#[test]
fn a_full_disk_fails_analyze_json_and_keeps_the_old_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // Four classes at 90 degrees in the plane of e0, e1, features around 3 w_c.
    let w = Array2::from_shape_fn((4, 3), |(c, j)| match (c, j) {
        (0, 0) | (1, 1) => 1.0,
        (2, 0) | (3, 1) => -1.0,
        (_, 2) => 0.1,
        _ => 0.0,
    });
    let x = Array2::from_shape_fn((16, 3), |(i, j)| {
        3.0 * w[[i % 4, j]] + 0.05 * (((i * 7 + j * 3) % 5) as f32 - 2.0)
    });
    write_npy(p("x.npy"), &x).unwrap();
    write_npy(p("y.npy"), &Array1::from_shape_fn(16, |i| (i % 4) as i64)).unwrap();
    write_npy(p("w.npy"), &w).unwrap();
    let json = dir.path().join("a.json");
    let args = [
        "analyze".to_string(),
        "--features".into(),
        p("x.npy"),
        "--labels".into(),
        p("y.npy"),
        "--weights".into(),
        p("w.npy"),
        "--json".into(),
        p("a.json"),
    ];
    ok(&run(&args));
    let old = fs::read(&json).unwrap();
    serde_json::from_slice::<serde_json::Value>(&old).unwrap();
    let o = run_on_full_disk(&args, old.len() as u64 / 2);
    fails_writing(&o, &json);
    assert_eq!(fs::read(&json).unwrap(), old);
    assert_eq!(names(dir.path()), ["a.json", "w.npy", "x.npy", "y.npy"]);
}

// ---------------------------------------------------------------- kill -9

/// Poll every few milliseconds until `ready` holds or the child exits;
/// then SIGKILL it. Returns false when the child had already finished.
fn kill_when(child: &mut Child, mut ready: impl FnMut() -> bool) -> bool {
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready() {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn spawn(args: &[String], read_stderr: bool) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(if read_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap()
}

fn lines_of(p: &Path) -> usize {
    fs::read_to_string(p)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_run_killed_at_several_points_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 600, 200, 24);
    let extra = [
        "--epochs",
        "4",
        "--head",
        "symmetrical",
        "--export-features",
        "--probe-train-samples",
        "200",
    ];
    let reference = dir.path().join("reference");
    ok(&run(&train_args(dir.path(), &reference, &extra)));
    assert_eq!(check_run_dir(&reference), Some(4));

    let out = dir.path().join("run");
    let fresh = train_args(dir.path(), &out, &extra);
    let mut resume = fresh.clone();
    resume.push("--resume".into());
    let mut hit = vec![];

    // 1. Early in epoch 1: the data is loaded, no checkpoint yet.
    let mut child = spawn(&fresh, true);
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("symfeat train:") {
        line.clear();
    }
    hit.push(kill_when(&mut child, || true));
    drop(err);
    let resumable = check_run_dir(&out).is_some();
    if !resumable {
        // What the error says to do: start the run again without --resume.
        let o = run(&resume);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("start the run without --resume"),
            "{}",
            stderr(&o)
        );
    }

    // 2. Between epochs: right after the first checkpoint is written.
    let mut child = spawn(if resumable { &resume } else { &fresh }, false);
    hit.push(kill_when(&mut child, || {
        out.join("checkpoint.bin").exists()
    }));
    assert!(check_run_dir(&out).is_some(), "{:?}", names(&out));
    // A writer killed mid-write leaves a temporary file; the resume clears it.
    fs::write(
        out.join("checkpoint.bin.999999999.tmp"),
        b"half a checkpoint",
    )
    .unwrap();

    // 3. During the last epoch: three epochs in metrics.jsonl.
    let mut child = spawn(&resume, false);
    hit.push(kill_when(&mut child, || {
        lines_of(&out.join("metrics.jsonl")) >= 3
    }));
    assert!(!out.join("checkpoint.bin.999999999.tmp").exists());
    // Only the writer just killed may have left a temporary file.
    let killed = format!(".{}.tmp", child.id());
    let done = check_run_dir_but(&out, |n| n.ends_with(&killed)).unwrap();
    assert!(done >= 2, "checkpoint after epoch {done}");

    // 4. Resume to the end.
    ok(&run(&resume));
    println!("kill points reached before the run ended: {hit:?}");
    assert_eq!(check_run_dir(&out), Some(4), "{:?}", names(&out));
    assert_eq!(names(&out), names(&reference));
    let (got, want) = (metrics(&out), metrics(&reference));
    assert_eq!(got.len(), 4);
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(without_timing(a), without_timing(b));
    }
    let probe = |d: &Path| fs::read_to_string(d.join("probe.jsonl")).unwrap();
    assert_eq!(probe(&out), probe(&reference));
    for f in [
        "model.safetensors",
        "features.npy",
        "labels.npy",
        "class_weights.npy",
        "head_params.npy",
    ] {
        let same = fs::read(out.join(f)).unwrap() == fs::read(reference.join(f)).unwrap();
        assert!(same, "{f} differs from the uninterrupted run's");
    }
}
