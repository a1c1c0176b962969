//! Atomic file writes: write a sibling temporary file, flush it to disk, then
//! rename it over the target. A reader sees the old file or the new one,
//! never half of one; a crash leaves at most a stray `.tmp` file, which
//! [`remove_stale_temps`] clears when the run starts again.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Write `path` atomically with whatever `fill` writes.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = io::BufWriter::new(File::create(&tmp)?);
        fill(&mut file)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// Write `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// The writer's process id in a temporary name `NAME.PID.tmp`.
fn temp_owner<'a>(file_name: &'a str, names: &[&str]) -> Option<(&'a str, u32)> {
    let (base, pid) = file_name.strip_suffix(".tmp")?.rsplit_once('.')?;
    if !names.contains(&base) || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, pid.parse().ok()?))
}

/// Remove the temporary files (`NAME.PID.tmp`, `NAME` one of `names`) that
/// writers killed mid-write left in `dir`; those of this process and, where
/// `/proc` tells, of running processes are kept. Returns the removed paths.
pub fn remove_stale_temps(dir: &Path, names: &[&str]) -> io::Result<Vec<PathBuf>> {
    let own = std::process::id();
    let procfs = Path::new("/proc/self").exists();
    let mut removed = vec![];
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some((_, pid)) = name.to_str().and_then(|n| temp_owner(n, names)) else {
            continue;
        };
        let running = pid == own || (procfs && Path::new("/proc").join(pid.to_string()).exists());
        if !running && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_fill_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write(&p, b"old").unwrap();
        let err = write_with(&p, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(err.unwrap_err().to_string().contains("a.txt"));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Regression (issue #7): a run killed while writing its checkpoint left
    /// `checkpoint.bin.PID.tmp` behind for good.
    #[test]
    fn stale_temps_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["checkpoint.bin", "metrics.jsonl"];
        // pid_max is at most 2^22, so 999999999 is never a running process.
        let stale = dir.path().join("checkpoint.bin.999999999.tmp");
        let own = tmp_path(&dir.path().join("metrics.jsonl"));
        let foreign = dir.path().join("notes.txt.999999999.tmp");
        let plain = dir.path().join("checkpoint.bin");
        for p in [&stale, &own, &foreign, &plain] {
            fs::write(p, b"x").unwrap();
        }
        let removed = remove_stale_temps(dir.path(), &names).unwrap();
        assert_eq!(removed, vec![stale.clone()]);
        assert!(!stale.exists() && own.exists() && foreign.exists() && plain.exists());
        let missing = dir.path().join("nothing-here");
        assert!(remove_stale_temps(&missing, &names).unwrap().is_empty());
    }

    #[test]
    fn unwritable_directory_is_an_error_naming_the_file() {
        let err = write(Path::new("/nonexistent-dir/x.bin"), b"x").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.bin"));
    }
}
