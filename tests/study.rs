//! Studies end to end: a tiny grid produces the report and summaries; the
//! report opens in headless Chromium with every image; a study killed
//! between runs completes on restart without re-running finished runs.

mod common;

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn study_toml(data: &Path, heads: &[&str], seeds: &[u64], epochs: usize) -> String {
    format!(
        "heads = {heads:?}\nseeds = {seeds:?}\ndescription = \"test study\"\n[train]\ndataset = \"mnist\"\ndata = {:?}\nnet = \"mlp\"\nepochs = {epochs}\nbatch = 32\nthreads = 1\nprobe_train_samples = 100\n",
        data.display().to_string()
    )
}

/// `symfeat study --config CFG --out OUT`: its output.
fn study_cli(cfg: &Path, out: &Path) -> std::process::Output {
    Command::cargo_bin("symfeat")
        .unwrap()
        .args([
            "study",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

/// `symfeat study --config CFG --out OUT`, which must succeed.
fn run_study_cli(cfg: &Path, out: &Path) {
    let o = study_cli(cfg, out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_tiny_study_writes_the_report_and_summaries() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 400, 200, 5);
    let cfg = dir.path().join("study.toml");
    std::fs::write(
        &cfg,
        study_toml(dir.path(), &["softmax", "symmetrical"], &[0, 1], 2),
    )
    .unwrap();
    let out = dir.path().join("study");
    run_study_cli(&cfg, &out);
    for f in ["report.html", "summary.json", "summary.md", "study.toml"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let variants = s["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    for h in variants {
        assert_eq!(h["runs"], 2);
        for k in [
            "name",
            "head",
            "feature_act",
            "converged_runs",
            "final_acc",
            "best_acc",
            "angle_w_mean_deg",
            "tail_std",
            "drops",
            "loss_spikes",
            "conditions",
            "geometry",
        ] {
            assert!(!h[k].is_null(), "{k} missing in {h}");
        }
        assert!(h["final_acc"]["mean"].is_number() && h["final_acc"]["ci95"].is_number());
        for c in ["unit", "zero_sum", "coplanar", "learnable"] {
            assert!(h["conditions"][c].is_boolean(), "conditions.{c} in {h}");
        }
        for g in [
            "angle_w_mean",
            "angle_w_softmax_center",
            "nc1",
            "nc3",
            "compactness",
            "separation",
        ] {
            assert!(h["geometry"][g]["mean"].is_number(), "geometry.{g} missing");
        }
    }
    // The symmetrical layer: unit + zero-sum + coplanar, measured.
    let sym = &variants[1];
    assert_eq!(sym["name"], "symmetrical");
    for c in ["unit", "zero_sum", "coplanar", "learnable"] {
        assert_eq!(sym["conditions"][c], true, "{c}: {sym}");
    }
    assert_eq!(variants[0]["conditions"]["unit"], false);
    // Two epochs are fewer than the convergence window: both claims are
    // decided, and inconclusive.
    for claim in ["weights_are_centers", "more_stable"] {
        let list = s["claims"][claim].as_array().unwrap();
        assert_eq!(list.len(), 1, "{claim}");
        assert_eq!(list[0]["variant"], "symmetrical");
        assert_eq!(list[0]["decision"], "inconclusive", "{claim}: {}", list[0]);
        assert!(list[0]["evidence"].is_string());
    }
    let figures: Vec<&str> = s["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in [
        "test_acc",
        "train_loss",
        "angle_w_mean",
        "nc3",
        "landscape_softmax",
        "landscape_symmetrical",
    ] {
        assert!(figures.contains(&f), "{f} not in {figures:?}");
        for ext in ["png", "svg"] {
            assert!(
                out.join("figures").join(format!("{f}.{ext}")).exists(),
                "{f}.{ext}"
            );
        }
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("| softmax |"), "{md}");
    assert!(
        md.contains("## Decisions") && md.contains("not converged by epoch 2"),
        "{md}"
    );
    // `symfeat report` rebuilds the same report from the finished runs.
    std::fs::remove_file(out.join("report.html")).unwrap();
    Command::cargo_bin("symfeat")
        .unwrap()
        .args(["report", out.to_str().unwrap()])
        .assert()
        .success();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<img ").count(), figures.len());
}

/// The report of a tiny study opens in headless Chromium with every image.
#[test]
#[cfg_attr(
    not(has_chromium),
    ignore = "needs Debian's chromium (/usr/bin/chromium) to open the report"
)]
fn the_report_opens_in_chromium_with_every_image() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 200, 100, 5);
    let cfg = dir.path().join("study.toml");
    std::fs::write(
        &cfg,
        study_toml(dir.path(), &["softmax", "symmetrical"], &[0], 1),
    )
    .unwrap();
    let out = dir.path().join("study");
    run_study_cli(&cfg, &out);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let figures = s["figures"].as_array().unwrap().len();
    assert!(figures >= 6, "{figures} figures");
    check_in_chromium(&out.join("report.html"), figures);
}

/// Open the report in headless Chromium: no console message, every image decoded.
fn check_in_chromium(report: &Path, images: usize) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let chromium = chromium.expect("the test is ignored without chromium (build.rs)");
    let profile = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &format!("file://{}", report.display()),
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    let log = String::from_utf8_lossy(&o.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let want = format!("images loaded: {images}/{images}");
    assert!(
        dom.contains(&want),
        "{want:?} not in the rendered page (chromium rc {:?})",
        o.status.code()
    );
}

#[test]
fn a_killed_study_completes_without_rerunning_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 3000, 100, 6);
    let cfg = dir.path().join("study.toml");
    std::fs::write(&cfg, study_toml(dir.path(), &["softmax"], &[0, 1, 2], 2)).unwrap();
    let out = dir.path().join("study");
    let bin = assert_cmd::cargo::cargo_bin("symfeat");
    let args = [
        "study",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let first = out.join("runs/mnist-mlp-softmax-seed0");
    let mut child = std::process::Command::new(&bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !first.join("class_weights.npy").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "first run never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, between runs or inside the second one
    child.wait().unwrap();
    if out
        .join("runs/mnist-mlp-softmax-seed2/class_weights.npy")
        .exists()
    {
        eprintln!("note: the study finished before the kill; only the skipping is tested");
    }
    let ck = std::fs::read(first.join("checkpoint.bin")).unwrap();
    let modified = std::fs::metadata(first.join("checkpoint.bin"))
        .unwrap()
        .modified()
        .unwrap();

    let o = std::process::Command::new(&bin)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("softmax-seed0: finished earlier, skipped"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(first.join("checkpoint.bin")).unwrap(),
        ck,
        "a finished run was re-run"
    );
    assert_eq!(
        std::fs::metadata(first.join("checkpoint.bin"))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    for seed in 0..3 {
        let m = std::fs::read_to_string(
            out.join(format!("runs/mnist-mlp-softmax-seed{seed}/metrics.jsonl")),
        )
        .unwrap();
        assert_eq!(m.lines().count(), 2, "seed {seed}");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["variants"][0]["runs"], 3);
}

#[test]
fn reproduce_prints_its_study() {
    let o = Command::cargo_bin("symfeat")
        .unwrap()
        .args(["reproduce", "--print-config"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let s: symfeat::study::StudyConfig =
        toml::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    let names: Vec<String> = s
        .all_variants()
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    for h in [
        "softmax",
        "normface",
        "sphereface",
        "cosface",
        "arcface",
        "symmetrical",
        "symmetrical-bn",
        "symmetrical-linear",
        "simplex",
        "normface-bn",
    ] {
        assert!(names.iter().any(|x| x == h), "{h} not in {names:?}");
    }
    assert_eq!(s.seeds.len(), 3);
    let runs = s.runs(Path::new("/tmp/x")).unwrap();
    let bn = runs.iter().find(|r| r.variant == "symmetrical-bn").unwrap();
    assert_eq!(bn.config.feature_act, "bn");
    assert_eq!(bn.config.head, "symmetrical");
    let o = Command::cargo_bin("symfeat")
        .unwrap()
        .args(["reproduce", "--protocol", "paper"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--data"));
}

/// Each epoch line of a run's metrics, without its timing fields.
fn metrics_without_timing(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("seconds");
            m.remove("images_per_s");
            v
        })
        .collect()
}

#[test]
fn a_study_killed_at_random_points_ends_as_an_uninterrupted_one() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 600, 200, 11);
    let cfg = dir.path().join("study.toml");
    let epochs = 3;
    let (heads, seeds) = (["softmax", "symmetrical"], [0, 1]);
    std::fs::write(&cfg, study_toml(dir.path(), &heads, &seeds, epochs)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("symfeat");
    let study = |out: &Path| {
        let mut c = std::process::Command::new(&bin);
        c.args(["study", "--config", cfg.to_str().unwrap(), "--out"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let reference = dir.path().join("reference");
    let start = Instant::now();
    assert!(study(&reference).status().unwrap().success());
    let span = start.elapsed().as_millis().max(50) as u64;

    // Kill points drawn at random over the reference's duration; the seed
    // is printed so a failure can be replayed with SYMFEAT_KILL_SEED.
    let seed = std::env::var("SYMFEAT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen::<u64>());
    println!("SYMFEAT_KILL_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let out = dir.path().join("killed");
    let runs: Vec<_> = heads
        .iter()
        .flat_map(|h| seeds.map(|s| out.join(format!("runs/mnist-mlp-{h}-seed{s}"))))
        .collect();
    // Each restart resumes, so it needs less time than the whole study: kill
    // within the first half of the reference's duration, up to six times.
    let mut kills = vec![];
    for _ in 0..6 {
        let mut child = study(&out).spawn().unwrap();
        let at = rng.gen_range(0..span / 2);
        std::thread::sleep(Duration::from_millis(at));
        if child.try_wait().unwrap().is_some() {
            break; // finished before this kill point
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills.push(at);
        // Nothing finished is half-written: a run with its exported weights
        // has every epoch's metrics, and a summary present is whole JSON.
        for run in runs.iter().filter(|r| r.join("class_weights.npy").exists()) {
            assert_eq!(metrics_without_timing(run).len(), epochs, "{run:?}");
        }
        if let Ok(text) = std::fs::read_to_string(out.join("summary.json")) {
            serde_json::from_str::<serde_json::Value>(&text).expect("whole summary.json");
        }
    }
    println!("killed after {kills:?} ms (reference took {span} ms)");
    let o = study(&out).stderr(Stdio::piped()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    for f in ["summary.json", "summary.md"] {
        assert!(read(out.join(f)) == read(reference.join(f)), "{f} differs");
    }
    for run in &runs {
        let twin = reference.join("runs").join(run.file_name().unwrap());
        assert_eq!(metrics_without_timing(run), metrics_without_timing(&twin));
        for f in [
            "probe.jsonl",
            "model.safetensors",
            "class_weights.npy",
            "features.npy",
        ] {
            assert!(
                read(run.join(f)) == read(twin.join(f)),
                "{run:?}/{f} differs"
            );
        }
    }
}

#[test]
fn two_variants_that_differ_only_in_feature_act_give_two_rows() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 300, 100, 7);
    let cfg = dir.path().join("study.toml");
    let text = format!(
        "{}[[variants]]\nname = \"sym-relu\"\nhead = \"symmetrical\"\n\
         [[variants]]\nname = \"sym-bn\"\nhead = \"symmetrical\"\nhead_params = {{ init = \"normal\" }}\ntrain = {{ feature_act = \"bn\" }}\n",
        study_toml(dir.path(), &[], &[0, 1], 4).replace(
            "epochs = 4",
            "epochs = 4\nplateau_window = 3\nplateau_slope = 0.01"
        )
    );
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("study");
    run_study_cli(&cfg, &out);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let v = s["variants"].as_array().unwrap();
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(
        (v[0]["name"].as_str(), v[0]["feature_act"].as_str()),
        (Some("sym-relu"), Some("relu"))
    );
    assert_eq!(
        (v[1]["name"].as_str(), v[1]["feature_act"].as_str()),
        (Some("sym-bn"), Some("bn"))
    );
    assert_eq!(v[1]["head_params"]["init"], 1.0);
    let c = std::fs::read_to_string(out.join("runs/mnist-mlp-sym-bn-seed1/config.toml")).unwrap();
    assert!(c.contains("feature_act = \"bn\""), "{c}");
    // Each symmetrical variant gets its own decision of each claim.
    for claim in ["weights_are_centers", "more_stable"] {
        let list = s["claims"][claim].as_array().unwrap();
        assert_eq!(list.len(), 2, "{claim}");
    }
    // No popular head in the study: claim (b) cannot be decided.
    assert_eq!(s["claims"]["more_stable"][0]["decision"], "inconclusive");
}

/// #15: one failed run (not diverged) ended the whole study. Now it is
/// recorded (`failed.json`), the study goes on, the report counts it, the
/// command exits 1 naming it, and the same command again retries it. The
/// failure here: a simplex ETF on LeNet's 2-D features (D < C), which only
/// the head's construction sees, placed before a good variant.
#[test]
fn a_failed_run_is_recorded_and_the_study_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 300, 100, 3);
    let cfg = dir.path().join("study.toml");
    let text = study_toml(dir.path(), &[], &[0], 1)
        .replace("net = \"mlp\"", "net = \"lenet\"\nfeature_dim = 2")
        + "[[variants]]\nname = \"bad\"\nhead = \"simplex\"\n[[variants]]\nname = \"good\"\nhead = \"softmax\"\n";
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("study");
    let run = |expect: &[&str]| {
        let o = study_cli(&cfg, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        for w in expect {
            assert!(err.contains(w), "{w:?} not in {err}");
        }
    };
    run(&[
        "1 run(s) failed",
        "mnist-lenet-bad-seed0",
        "simplex ETF needs D >= C",
    ]);
    let bad = out.join("runs").join("mnist-lenet-bad-seed0");
    let marker = std::fs::read_to_string(bad.join("failed.json")).unwrap();
    assert!(marker.contains("simplex ETF needs D >= C"), "{marker}");
    assert!(
        out.join("runs/mnist-lenet-good-seed0/model.safetensors")
            .exists()
    );
    assert!(out.join("report.html").exists());
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let v = s["variants"].as_array().unwrap();
    let by = |n: &str| v.iter().find(|x| x["name"] == n).unwrap().clone();
    assert_eq!(
        (by("bad")["runs"].clone(), by("bad")["failed"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(by("good")["failed"], 0);
    run(&[
        "failed earlier, retrying",
        "finished earlier, skipped",
        "1 run(s) failed",
    ]);
}

/// Review of #15: a run another process holds is skipped by a study, never
/// marked failed or touched; the next study trains it.
#[test]
fn a_study_skips_a_run_another_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 200, 100, 4);
    let cfg = dir.path().join("study.toml");
    std::fs::write(&cfg, study_toml(dir.path(), &["softmax"], &[0, 1], 1)).unwrap();
    let out = dir.path().join("study");
    let held_dir = out.join("runs").join("mnist-mlp-softmax-seed0");
    std::fs::create_dir_all(&held_dir).unwrap();
    let held = symfeat::run_dir::lock(&held_dir, "run").unwrap();
    let o = study_cli(&cfg, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("being written by another symfeat process") && err.contains("skipped"),
        "{err}"
    );
    assert!(!held_dir.join("failed.json").exists());
    assert!(!held_dir.join("config.toml").exists());
    assert!(
        out.join("runs/mnist-mlp-softmax-seed1/model.safetensors")
            .exists()
    );
    drop(held);
    run_study_cli(&cfg, &out);
    assert!(held_dir.join("model.safetensors").exists());
}

// ---------------------------------------------------------------- #19: many processes, one study

/// `symfeat study --config CFG --out OUT EXTRA..`, its errors captured.
fn study_process(cfg: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("symfeat"));
    c.args(["study", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// How many times the logs in `err` started training run `name` afresh.
fn trainings(err: &str, name: &str) -> usize {
    err.lines()
        .filter(|l| l.ends_with(&format!("] {name}: training")))
        .count()
}

/// The runs `names` of two studies are the same runs: every epoch's
/// figures, the probe, the weights and the exports, byte for byte.
fn same_runs(a: &Path, b: &Path, names: &[String]) {
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    for name in names {
        let (x, y) = (a.join("runs").join(name), b.join("runs").join(name));
        assert_eq!(
            metrics_without_timing(&x),
            metrics_without_timing(&y),
            "{name}"
        );
        for f in [
            "probe.jsonl",
            "model.safetensors",
            "class_weights.npy",
            "features.npy",
        ] {
            assert!(read(x.join(f)) == read(y.join(f)), "{name}/{f} differs");
        }
    }
    assert!(
        read(a.join("summary.json")) == read(b.join("summary.json")),
        "summary.json differs"
    );
}

fn report(out: &Path) {
    let o = Command::cargo_bin("symfeat")
        .unwrap()
        .arg("report")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Shards (with one started twice), `--jobs 2`, and two whole studies
/// racing on one directory: every cell trained exactly once, and the same
/// runs and summary as a sequential study.
#[test]
fn shards_jobs_and_racing_studies_train_each_cell_once_as_a_sequential_study() {
    let dir = tempfile::tempdir().unwrap();
    common::write_synthetic_mnist(dir.path(), 600, 200, 12);
    let cfg = dir.path().join("study.toml");
    std::fs::write(
        &cfg,
        study_toml(dir.path(), &["softmax", "symmetrical"], &[0, 1], 2),
    )
    .unwrap();
    let names: Vec<String> = ["softmax", "symmetrical"]
        .iter()
        .flat_map(|h| (0..2).map(move |s| format!("mnist-mlp-{h}-seed{s}")))
        .collect();
    let reference = dir.path().join("reference");
    run_study_cli(&cfg, &reference);

    let all_at_once = |out: &Path, each: &[&[&str]]| -> String {
        let children: Vec<_> = each
            .iter()
            .map(|extra| study_process(&cfg, out, extra).spawn().unwrap())
            .collect();
        let mut err = String::new();
        for c in children {
            let o = c.wait_with_output().unwrap();
            let e = String::from_utf8_lossy(&o.stderr).to_string();
            assert!(o.status.success(), "{e}");
            err.push_str(&e);
        }
        err
    };
    for (what, extra) in [
        (
            "shards",
            &[
                &["--shard", "1/3"][..],
                &["--shard", "2/3"],
                &["--shard", "3/3"],
                &["--shard", "2/3"],
            ][..],
        ),
        ("jobs", &[&["--jobs", "2"][..]][..]),
        ("racing studies", &[&[][..], &[]][..]),
    ] {
        let out = dir.path().join(what.replace(' ', "-"));
        let err = all_at_once(&out, extra);
        for name in &names {
            assert_eq!(
                trainings(&err, name),
                1,
                "{what}: {name} trained {}x:\n{err}",
                trainings(&err, name)
            );
        }
        assert!(!err.contains("resuming"), "{what}:\n{err}");
        // The last of several processes may have built its report before
        // another's last cell ended (it says so): build it once more.
        report(&out);
        same_runs(&out, &reference, &names);
    }
}

/// A shard killed with SIGKILL inside a cell: `--status` shows the cell
/// interrupted, the shard started again resumes it, and the study ends as
/// a sequential one.
#[test]
fn a_shard_killed_mid_cell_resumes_it_and_the_study_ends_as_a_sequential_one() {
    let dir = tempfile::tempdir().unwrap();
    // Epochs of ~0.3 s (6000 images, one thread): long enough to kill
    // the shard inside its cell, after the first epoch's checkpoint.
    common::write_synthetic_mnist(dir.path(), 6000, 100, 13);
    let cfg = dir.path().join("study.toml");
    std::fs::write(&cfg, study_toml(dir.path(), &["softmax"], &[0, 1], 3)).unwrap();
    let names: Vec<String> = (0..2)
        .map(|s| format!("mnist-mlp-softmax-seed{s}"))
        .collect();
    let reference = dir.path().join("reference");
    run_study_cli(&cfg, &reference);

    let out = dir.path().join("sharded");
    let status = || -> String {
        let o = Command::cargo_bin("symfeat")
            .unwrap()
            .arg("study")
            .arg("--status")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    // Shard 1/2 holds cell 0 (seed 0); killed once its first epoch is saved.
    let first = out.join("runs").join(&names[0]);
    let mut child = study_process(&cfg, &out, &["--shard", "1/2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !first.join("checkpoint.bin").exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    if first.join("class_weights.npy").exists() {
        eprintln!("note: the cell finished before the kill; only the skipping is tested");
    } else {
        let s = status();
        assert!(
            s.lines()
                .any(|l| l.contains(&names[0]) && l.contains("pending (interrupted after epoch")),
            "{s}"
        );
        assert!(
            s.lines()
                .any(|l| l.contains(&names[1]) && l.ends_with("pending")),
            "{s}"
        );
        // A cell another process holds shows its holder.
        let second = out.join("runs").join(&names[1]);
        std::fs::create_dir_all(&second).unwrap();
        let held = symfeat::run_dir::lock(&second, "run").unwrap();
        let s = status();
        assert!(
            s.contains(&format!("running (run pid {}", std::process::id())),
            "{s}"
        );
        drop(held);
        let o = study_process(&cfg, &out, &["--shard", "1/2"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains(&format!("{}: resuming", names[0])), "{err}");
        assert!(!err.contains(&names[1]), "shard 1/2 touched cell 1:\n{err}");
    }
    let o = study_process(&cfg, &out, &["--shard", "1/2"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = study_process(&cfg, &out, &["--shard", "2/2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("symfeat report"), "{err}");
    let s = status();
    assert!(s.ends_with("2 cells: 2 finished\n"), "{s}");
    report(&out);
    same_runs(&out, &reference, &names);
}

/// `--print-slurm`: the study directory is prepared and the script runs
/// each shard with its threads; a GPU study asks for a GPU.
#[test]
fn print_slurm_writes_a_job_array_script() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("study.toml");
    std::fs::write(
        &cfg,
        study_toml(dir.path(), &["softmax", "arcface"], &[0, 1, 2], 1),
    )
    .unwrap();
    let out = dir.path().join("s1");
    let o = Command::cargo_bin("symfeat")
        .unwrap()
        .args([
            "study",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args([
            "--print-slurm",
            "--slurm-cpus",
            "2",
            "--slurm-partition",
            "short",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = String::from_utf8(o.stdout).unwrap();
    let out = out.canonicalize().unwrap();
    for line in [
        "#SBATCH --array=1-6".to_string(),
        "#SBATCH --cpus-per-task=2".into(),
        "#SBATCH --time=24:00:00".into(),
        "#SBATCH --partition=short".into(),
        format!("#SBATCH --output={}/slurm/%A_%a.out", out.display()),
        format!("#SBATCH --error={}/slurm/%A_%a.err", out.display()),
    ] {
        assert!(script.lines().any(|l| l == line), "{line}\n{script}");
    }
    assert!(script.contains(&format!(
        "study --config '{}/study.toml' --out '{}' --shard \"$SLURM_ARRAY_TASK_ID/6\" --threads 2",
        out.display(),
        out.display()
    )), "{script}");
    assert!(!script.contains("--gres"), "{script}");
    assert!(out.join("study.toml").exists() && out.join("slurm").is_dir());
    assert!(
        !out.join("runs").read_dir().unwrap().any(|_| true),
        "a run was started"
    );

    // `gpu` is train's alias of cuda:0; vulkan:cpu is not a GPU.
    for (device, gres) in [("cuda", true), ("gpu", true), ("vulkan:cpu", false)] {
        let toml = dir.path().join(format!("{device}.toml"));
        std::fs::write(
            &toml,
            study_toml(dir.path(), &["softmax"], &[0], 1) + &format!("device = \"{device}\"\n"),
        )
        .unwrap();
        let o = Command::cargo_bin("symfeat")
            .unwrap()
            .args(["study", "--config", toml.to_str().unwrap(), "--out"])
            .arg(dir.path().join(format!("s-{}", device.replace(':', "-"))))
            .args(["--print-slurm", "--slurm-tasks", "4"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let script = String::from_utf8(o.stdout).unwrap();
        assert_eq!(
            script.contains("#SBATCH --gres=gpu:1\n"),
            gres,
            "{device}: {script}"
        );
        // One cell: one task, whatever was asked.
        assert!(script.contains("#SBATCH --array=1-1\n"), "{script}");
        assert!(script.contains("#SBATCH --cpus-per-task=1\n"), "{script}");
    }
}
