//! A study's cells and their shards.
//!
//! The *cells* of a study are its runs in the grid's order: datasets, then
//! nets, then variants (`heads` first, then `[[variants]]`, as written),
//! then seeds, the last varying fastest. Cell `k` (0-based, `symfeat study
//! --status` prints it) is the `k`-th of that order; its run directory is
//! `OUT/runs/<dataset>-<net>-<variant>-seed<s>`. The order only depends on
//! the study file, so every process of a study (on any machine) agrees on it.
//!
//! Shard `i/n` (1-based: `1 <= i <= n`, Slurm's `SLURM_ARRAY_TASK_ID` with
//! `--array=1-n`) holds the cells `k` with `k % n == i - 1`: round robin, so
//! each shard gets every variant's seeds in turn and the shards' lengths
//! differ by at most one cell.

use anyhow::{Result, bail};
use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1..=count.
    pub index: usize,
    /// Number of shards, at least 1.
    pub count: usize,
}

impl Shard {
    /// Whether cell `k` (0-based) belongs to this shard.
    pub fn holds(&self, k: usize) -> bool {
        k % self.count == self.index - 1
    }
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let expected = "expected i/n with 1 <= i <= n, e.g. 3/16 (1-based, as Slurm's \
                        --array=1-n numbers its tasks)";
        let Some((i, n)) = s.split_once('/') else {
            bail!("--shard {s:?}: {expected}");
        };
        let (Ok(index), Ok(count)) = (i.trim().parse::<usize>(), n.trim().parse::<usize>()) else {
            bail!("--shard {s:?}: {expected}");
        };
        if count == 0 || index == 0 || index > count {
            bail!("--shard {s:?}: {expected}");
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition_the_cells() {
        let s: Shard = "3/16".parse().unwrap();
        assert_eq!(
            s,
            Shard {
                index: 3,
                count: 16
            }
        );
        assert_eq!(s.to_string(), "3/16");
        for bad in ["0/4", "5/4", "1/0", "3", "a/4", "1/b", "-1/4", "", "1/4/2"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("1 <= i <= n"), "{bad}: {e}");
        }
        // Every cell in exactly one shard, the lengths within one.
        for n in 1..=7 {
            let shards: Vec<Shard> = (1..=n).map(|i| Shard { index: i, count: n }).collect();
            let cells = 23;
            for k in 0..cells {
                assert_eq!(shards.iter().filter(|s| s.holds(k)).count(), 1);
            }
            let sizes: Vec<usize> = shards
                .iter()
                .map(|s| (0..cells).filter(|&k| s.holds(k)).count())
                .collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }
}
