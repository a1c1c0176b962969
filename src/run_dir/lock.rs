//! The lock of a directory being written (a run or a study): an OS file
//! lock (`flock` on Linux, through the standard library's `File::try_lock`)
//! on `DIR/.symfeat.lock`, held for the life of the [`DirLock`]. The OS
//! releases it when the process exits or crashes, so a lock is never stale;
//! the file itself stays (deleting it would race with a process that just
//! opened it) and holds the last holder's pid, host and start time, which
//! the error of a second process quotes.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside a locked directory.
pub const LOCK: &str = ".symfeat.lock";

/// A held directory lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    dir: PathBuf,
}

/// Another process (or another lock of this one) holds the directory: a
/// typed error, so that a study can skip a run someone else is training.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is being written by another symfeat process ({holder}); wait for it to end, \
     or choose another --out",
    dir.display()
)]
pub struct Locked {
    /// The directory.
    pub dir: PathBuf,
    /// What its lock file says about the holder.
    pub holder: String,
}

impl DirLock {
    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// This process, as the lock file records it.
fn holder_line() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into());
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "pid {} on {host}, since unix time {since}",
        std::process::id()
    )
}

/// [`lock`], waiting up to `wait` for another holder to release the
/// directory (a study's processes hold its lock for milliseconds, to check
/// and write `study.toml`; Slurm starts an array's tasks together).
pub fn lock_waiting(dir: &Path, what: &str, wait: std::time::Duration) -> Result<DirLock> {
    let start = std::time::Instant::now();
    loop {
        match lock(dir, what) {
            Err(e) if e.downcast_ref::<Locked>().is_some() && start.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Who holds `dir`'s lock now, if anyone: the holder's line from the lock
/// file. Probes with a shared lock, released at once; `None` when the
/// directory has no lock file or nobody holds it.
pub fn holder(dir: &Path) -> Option<String> {
    let mut file = File::open(dir.join(LOCK)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Some(if text.trim().is_empty() {
                "holder unknown".into()
            } else {
                text.trim().to_string()
            })
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// Lock the existing directory `dir` for writing; `what` ("run", "study")
/// names it in the error. Fails at once, naming the directory and the
/// holder, when another process (or another lock in this one) holds it.
pub fn lock(dir: &Path, what: &str) -> Result<DirLock> {
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let holder = match file.read_to_string(&mut holder) {
                Ok(_) if !holder.trim().is_empty() => holder.trim().to_string(),
                Ok(_) => "holder unknown".into(),
                Err(e) => format!("holder unreadable: {e}"),
            };
            return Err(Locked {
                dir: dir.to_path_buf(),
                holder,
            }
            .into());
        }
        // A file system without locks (some network or FUSE mounts): say
        // so and go on unlocked rather than refuse to work there.
        Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            eprintln!(
                "warning: {} cannot be locked on this file system ({e}); two processes on it \
                 would not be kept apart",
                dir.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {} ({what})", path.display()));
        }
    }
    let line = holder_line();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(format!("{what} {line}\n").as_bytes()))
        .and_then(|()| file.flush())
        .with_context(|| format!("cannot write the lock file {}", path.display()))?;
    Ok(DirLock {
        _file: file,
        dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_directory_and_the_holder_and_a_dropped_one_is_free() {
        let d = tempfile::tempdir().unwrap();
        let first = lock(d.path(), "run").unwrap();
        assert_eq!(first.dir(), d.path());
        let err = lock(d.path(), "run").unwrap_err();
        assert!(err.downcast_ref::<Locked>().is_some());
        let e = err.to_string();
        assert!(e.contains(&d.path().display().to_string()), "{e}");
        assert!(
            e.contains(&format!("run pid {}", std::process::id())),
            "{e}"
        );
        assert!(holder(d.path()).unwrap().starts_with("run pid"));
        drop(first);
        assert_eq!(holder(d.path()), None);
        lock(d.path(), "run").unwrap();
    }

    #[test]
    fn a_waiting_lock_gets_the_directory_once_released_and_gives_up_after_its_wait() {
        let d = tempfile::tempdir().unwrap();
        let held = lock(d.path(), "study").unwrap();
        let e = lock_waiting(d.path(), "study", std::time::Duration::from_millis(100)).unwrap_err();
        assert!(e.downcast_ref::<Locked>().is_some());
        let path = d.path().to_path_buf();
        let t = std::thread::spawn(move || {
            lock_waiting(&path, "study", std::time::Duration::from_secs(10)).map(|_| ())
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(held);
        t.join().unwrap().unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_lock_file() {
        let d = tempfile::tempdir().unwrap();
        let e = lock(&d.path().join("nope"), "study")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope/.symfeat.lock"), "{e}");
    }
}
