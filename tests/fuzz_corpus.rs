//! Replays the fuzzing corpus (`fuzz/corpus/TARGET`) and every crash case
//! kept as a regression (`fuzz/regressions/TARGET`) through the same entry
//! points as the fuzz targets: none may panic. See fuzz/README.md.

use std::path::Path;
use symfeat::fuzzing::TARGETS;

fn replay(dir: &Path, run: fn(&[u8])) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panicked", path.display());
        n += 1;
    }
    n
}

#[test]
fn corpus_and_regressions_replay_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, run) in TARGETS {
        let corpus = replay(&root.join("corpus").join(name), run);
        let regressions = replay(&root.join("regressions").join(name), run);
        assert!(corpus > 0, "fuzz/corpus/{name} is empty");
        eprintln!("{name}: {corpus} corpus files, {regressions} regressions");
    }
}
