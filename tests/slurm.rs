//! A study run as a Slurm job array from `symfeat study --print-slurm`, on
//! a real Slurm: every cell exactly once, the results of a sequential study.
//!
//! Needs a running Slurm whose node can run this machine's binaries (a
//! single-node Slurm on this machine: `.ci/slurm.sh start`, as root), so
//! it is ignored in a plain `cargo test`; CI starts Slurm and runs it:
//!
//! ```sh
//! .ci/slurm.sh start && cargo test --release --test slurm -- --ignored; .ci/slurm.sh stop
//! ```

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn symfeat() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("symfeat"))
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs a running Slurm (.ci/slurm.sh start); CI runs it with --ignored"]
fn a_study_as_a_slurm_job_array_runs_each_cell_once_as_a_sequential_study() {
    let started = Instant::now();
    // Under the target directory, not /tmp: Slurm's jobs may not see a
    // private /tmp, and the files outlive this test's process.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("slurm-study");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    common::write_synthetic_mnist(&root, 600, 200, 31);
    let cfg = root.join("study.toml");
    std::fs::write(
        &cfg,
        format!(
            "heads = [\"softmax\", \"symmetrical\"]\nseeds = [0, 1, 2]\n[train]\ndataset = \"mnist\"\n\
             data = {:?}\nnet = \"mlp\"\nepochs = 2\nbatch = 32\nthreads = 1\nprobe_train_samples = 100\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    let names: Vec<String> = ["softmax", "symmetrical"]
        .iter()
        .flat_map(|h| (0..3).map(move |s| format!("mnist-mlp-{h}-seed{s}")))
        .collect();

    let reference = root.join("reference");
    ok(symfeat()
        .args(["study", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&reference));

    // 6 cells in 4 tasks: shards of 2, 2, 1 and 1 cells.
    let out = root.join("cluster");
    let script = ok(symfeat()
        .args(["study", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--print-slurm", "--slurm-tasks", "4", "--slurm-cpus", "1"])
        .args(["--slurm-time", "00:10:00"]));
    let sbatch = root.join("s.sbatch");
    std::fs::write(&sbatch, &script).unwrap();
    // --wait: sbatch returns when every task of the array has ended, with
    // the array's exit code; bounded by `timeout`.
    ok(Command::new("timeout")
        .args(["600", "sbatch", "--wait", "--quiet"])
        .arg(&sbatch));
    eprintln!("job array done in {:.0?}", started.elapsed());

    let logs = out.join("slurm");
    let outs = files(&logs, "out");
    let errs = files(&logs, "err");
    assert_eq!(outs.len(), 4, "{outs:?}");
    assert_eq!(errs.len(), 4, "{errs:?}");
    let all: String = errs
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for name in &names {
        let n = all
            .lines()
            .filter(|l| l.ends_with(&format!("] {name}: training")))
            .count();
        assert_eq!(n, 1, "{name} trained {n} times:\n{all}");
    }
    for shard in 1..=4 {
        assert!(all.contains(&format!("shard {shard}/4: done")), "{all}");
    }

    let status = ok(symfeat().args(["study", "--status"]).arg(&out));
    assert!(status.ends_with("6 cells: 6 finished\n"), "{status}");
    let md = ok(symfeat().arg("report").arg(&out));
    for name in &names {
        let (a, b) = (
            out.join("runs").join(name),
            reference.join("runs").join(name),
        );
        for f in [
            "model.safetensors",
            "class_weights.npy",
            "features.npy",
            "probe.jsonl",
        ] {
            assert!(
                std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
                "{name}/{f} differs from the sequential study"
            );
        }
    }
    assert!(
        std::fs::read(out.join("summary.json")).unwrap()
            == std::fs::read(reference.join("summary.json")).unwrap(),
        "summary.json differs from the sequential study"
    );
    assert!(md.contains("symmetrical"), "{md}");
    let _ = std::fs::remove_dir_all(&root);
    eprintln!("slurm test: {:.0?}", started.elapsed());
}
