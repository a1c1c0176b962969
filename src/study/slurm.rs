//! `symfeat study --print-slurm`: an sbatch script that runs a study as a
//! Slurm job array, one shard of the cells per array task (`cells.rs`).
//! The tasks lock the cells they work on, so an array started twice, or
//! tasks that overlap, still run each cell once; `symfeat report OUT`
//! gathers the results when the array has ended.

use super::{StudyConfig, prepare_study};
use crate::run_dir::STUDY_FILE;
use anyhow::{Context, Result, bail};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What the user asked of the job array (`--slurm-*`, `--threads`).
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmRequest {
    /// `--slurm-tasks` (default: one task per cell).
    pub tasks: Option<usize>,
    /// `--slurm-cpus` (default: `--threads`, else `train.threads`, else 4).
    pub cpus: Option<usize>,
    /// `--threads`.
    pub threads: Option<usize>,
    /// `--slurm-time`.
    pub time: String,
    /// `--slurm-partition`.
    pub partition: Option<String>,
}

/// A job array written for a study: the script to submit and what it covers.
#[derive(Debug, Clone)]
pub struct SlurmJob {
    /// The sbatch script.
    pub script: String,
    /// Cells of the study.
    pub cells: usize,
    /// Array tasks (at most the cells; more were asked for when `capped`).
    pub tasks: usize,
    /// More tasks than cells were asked for.
    pub capped: bool,
    /// The study directory, absolute.
    pub out: PathBuf,
    /// Where the tasks' output and errors go.
    pub logs: PathBuf,
}

/// Check the request, write `out/study.toml` and `out/slurm/` (nothing is
/// written when a check fails) and build the job array's script.
pub fn prepare_job(study: &StudyConfig, out: &Path, req: &SlurmRequest) -> Result<SlurmJob> {
    check_time(&req.time)?;
    for (flag, v) in [("--slurm-tasks", req.tasks), ("--slurm-cpus", req.cpus)] {
        if v == Some(0) {
            bail!("{flag} 0: expected at least 1");
        }
    }
    // #SBATCH lines are not parsed by a shell: checked before anything is written.
    let text = std::path::absolute(out)
        .with_context(|| format!("cannot resolve {}", out.display()))?
        .display()
        .to_string();
    if text.contains(char::is_whitespace) || text.contains('%') {
        bail!(
            "--out {text}: an #SBATCH --output path cannot hold spaces or '%'; choose another --out"
        );
    }
    let runs = prepare_study(study, out)?;
    let logs = out.join("slurm");
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("cannot create the Slurm log directory {}", logs.display()))?;
    let out_abs = out
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", out.display()))?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find the symfeat executable")?;
    let cells = runs.len();
    let asked = req.tasks.unwrap_or(cells);
    // The device names as `train` reads them (`gpu` is `cuda:0`); the runs
    // were checked, so every name parses.
    let gpu = runs.iter().any(|r| {
        use crate::backend::{DeviceChoice, VulkanDevice};
        matches!(
            DeviceChoice::parse(&r.config.device),
            Ok(DeviceChoice::Cuda(_)
                | DeviceChoice::Vulkan(VulkanDevice::Best | VulkanDevice::Discrete(_)))
        )
    });
    let o = SlurmOptions {
        tasks: asked.min(cells),
        cpus_per_task: req
            .cpus
            .or(req.threads)
            .or(study.train.threads)
            .unwrap_or(4),
        time: req.time.clone(),
        partition: req.partition.clone(),
        gpu,
    };
    let name = out_abs
        .file_name()
        .map(|n| format!("symfeat-{}", n.to_string_lossy()))
        .unwrap_or_else(|| "symfeat".into());
    Ok(SlurmJob {
        script: script(&exe, &out_abs.join(STUDY_FILE), &out_abs, &name, &o),
        cells,
        tasks: o.tasks,
        capped: asked > cells,
        logs: out_abs.join("slurm"),
        out: out_abs,
    })
}

/// What the script asks Slurm for.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    /// Array tasks (shards), at least 1.
    pub tasks: usize,
    /// `--cpus-per-task`; each task trains with that many threads.
    pub cpus_per_task: usize,
    /// `--time` per task, in Slurm's format (e.g. `24:00:00`, `2-00:00:00`).
    pub time: String,
    /// `--partition`, when given (else the cluster's default).
    pub partition: Option<String>,
    /// Ask for one GPU per task (`--gres=gpu:1`): the study's device is a GPU.
    pub gpu: bool,
}

/// Slurm's `--time` formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
pub fn check_time(time: &str) -> anyhow::Result<()> {
    let ok = {
        let (days, rest) = match time.split_once('-') {
            Some((d, r)) => (Some(d), r),
            None => (None, time),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        days.is_none_or(digits)
            && parts.iter().all(|p| digits(p))
            && parts.len() <= 3
            && (days.is_none() || !parts.is_empty())
    };
    if !ok || time.is_empty() {
        anyhow::bail!(
            "--slurm-time {time:?}: expected Slurm's time format, e.g. 24:00:00, 90 (minutes) \
             or 2-00:00:00 (days-hours:minutes:seconds)"
        );
    }
    Ok(())
}

/// The script: `exe` (absolute) runs `study --config config --out out
/// --shard $SLURM_ARRAY_TASK_ID/tasks --threads cpus_per_task`; each task's
/// output and errors go to `out/slurm/<job>_<task>.out` and `.err` (the
/// directory must exist before `sbatch`).
pub fn script(exe: &Path, config: &Path, out: &Path, name: &str, o: &SlurmOptions) -> String {
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let logs = out.join("slurm");
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# Written by `symfeat study --print-slurm`: submit with `sbatch`,"
    );
    let _ = writeln!(
        s,
        "# then `symfeat report {}` when the array has ended",
        q(out)
    );
    let _ = writeln!(s, "# (`symfeat study --status {}` meanwhile).", q(out));
    let _ = writeln!(s, "#SBATCH --job-name={}", sbatch_word(name));
    let _ = writeln!(s, "#SBATCH --array=1-{}", o.tasks);
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", o.cpus_per_task);
    let _ = writeln!(s, "#SBATCH --time={}", o.time);
    if let Some(p) = &o.partition {
        let _ = writeln!(s, "#SBATCH --partition={}", sbatch_word(p));
    }
    if o.gpu {
        let _ = writeln!(s, "#SBATCH --gres=gpu:1");
    }
    // #SBATCH lines are not parsed by a shell: no quoting, and paths with
    // spaces are refused by `print-slurm` before this is called.
    let _ = writeln!(s, "#SBATCH --output={}/%A_%a.out", logs.display());
    let _ = writeln!(s, "#SBATCH --error={}/%A_%a.err", logs.display());
    let _ = writeln!(s, "set -euo pipefail");
    let _ = writeln!(
        s,
        "exec {} study --config {} --out {} --shard \"$SLURM_ARRAY_TASK_ID/{}\" --threads {}",
        q(exe),
        q(config),
        q(out),
        o.tasks,
        o.cpus_per_task
    );
    s
}

/// `s` in single quotes for bash.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A job name or partition for an `#SBATCH` line: characters other than
/// letters, digits, `-`, `_` and `.` become `_`.
fn sbatch_word(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_asks_for_an_array_of_shards_with_its_resources() {
        let o = SlurmOptions {
            tasks: 16,
            cpus_per_task: 4,
            time: "2-00:00:00".into(),
            partition: Some("gpu".into()),
            gpu: true,
        };
        let s = script(
            Path::new("/opt/symfeat"),
            Path::new("/shared/s1/study.toml"),
            Path::new("/shared/s1"),
            "s1 study",
            &o,
        );
        for line in [
            "#SBATCH --job-name=s1_study",
            "#SBATCH --array=1-16",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --time=2-00:00:00",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --output=/shared/s1/slurm/%A_%a.out",
            "#SBATCH --error=/shared/s1/slurm/%A_%a.err",
            "exec '/opt/symfeat' study --config '/shared/s1/study.toml' --out '/shared/s1' \
             --shard \"$SLURM_ARRAY_TASK_ID/16\" --threads 4",
        ] {
            assert!(s.lines().any(|l| l == line), "{line}\n{s}");
        }
        let cpu = script(
            Path::new("/x"),
            Path::new("/y"),
            Path::new("/z"),
            "z",
            &SlurmOptions {
                gpu: false,
                partition: None,
                ..o
            },
        );
        assert!(
            !cpu.contains("--gres") && !cpu.contains("--partition"),
            "{cpu}"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn slurm_times_are_checked() {
        for ok in ["90", "24:00:00", "2-00:00:00", "1-12", "30:00", "0-1:00"] {
            check_time(ok).unwrap();
        }
        for bad in ["", "a", "1:2:3:4", "-1", "1-", "1 day", "24h"] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
    }
}
