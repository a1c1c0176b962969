//! The paper's two claims, each decided for each feature variant of the
//! symmetrical layer with a stated rule and three outcomes.
//!
//! (a) "The symmetrical layer's weights are the class centers": over the
//!     variant's converged runs, the final mean angle(w_c, class mean) (test
//!     set, uncentred means, field notes §4) and its 95 % Student-t
//!     interval. `supported` when the whole interval lies below
//!     [`CENTER_DEG`], `not supported` when it lies above, `inconclusive`
//!     when it straddles it or fewer than [`MIN_RUNS`] runs converged.
//! (b) "Its learning curve is more stable than the popular heads'": tail
//!     stability is the residual std of the test accuracy around a line
//!     over the last epochs of a converged run (`statistics`). Against each
//!     popular head (softmax, normface, sphereface, cosface, arcface on the
//!     default features) present in the study, the per-seed differences
//!     `tail_std(variant) - tail_std(head)` over seeds where both converged
//!     give a paired t interval at level `1 - 0.05 / k` (Bonferroni over the
//!     k heads) and a paired t-test p-value. Each comparison is `more
//!     stable` (interval below 0), `less stable` (above 0), `equivalent`
//!     (inside +-[`EQUIVALENCE`]) or `undecided`. The claim is `supported`
//!     when every comparison says more stable, `not supported` when one
//!     says less stable or equivalent, `inconclusive` otherwise (including
//!     no comparison with at least [`MIN_RUNS`] pairs).

use crate::statistics::{MeanCi, Paired, paired};
use serde::Serialize;

/// Angle (degrees) under which a weight "is" its class center.
pub const CENTER_DEG: f64 = 15.0;
/// Fewest runs (or seed pairs) that make an interval.
pub const MIN_RUNS: usize = 2;
/// Differences of tail std (accuracy fraction) this small are no difference:
/// 0.25 points.
pub const EQUIVALENCE: f64 = 0.0025;
/// The popular heads claim (b) compares against.
pub const POPULAR: [&str; 5] = ["softmax", "normface", "sphereface", "cosface", "arcface"];

/// A claim's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The data supports the claim by the stated rule.
    Supported,
    /// The data contradicts it by the stated rule.
    NotSupported,
    /// Too few runs, or the intervals do not decide.
    Inconclusive,
}

impl Decision {
    /// Words for the report.
    pub fn words(self) -> &'static str {
        match self {
            Self::Supported => "supported",
            Self::NotSupported => "not supported",
            Self::Inconclusive => "inconclusive",
        }
    }
}

/// One decision of one claim for one variant.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    /// The symmetrical-layer variant.
    pub variant: String,
    /// The outcome.
    pub decision: Decision,
    /// One line of evidence.
    pub evidence: String,
    /// Claim (b): the comparison against each popular head.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<Comparison>,
}

/// Claim (a) from the final angles of the variant's converged runs.
pub fn weights_are_centers(variant: &str, converged_angles: &[f64], runs: usize) -> Claim {
    let ci = MeanCi::of(converged_angles);
    let (decision, why) = if ci.n < MIN_RUNS {
        (
            Decision::Inconclusive,
            format!(
                "{} of {runs} runs converged, {MIN_RUNS} needed for an interval",
                ci.n
            ),
        )
    } else if ci.hi() < CENTER_DEG {
        (
            Decision::Supported,
            format!("the interval lies below {CENTER_DEG}°"),
        )
    } else if ci.lo() > CENTER_DEG {
        (
            Decision::NotSupported,
            format!("the interval lies above {CENTER_DEG}°"),
        )
    } else {
        (
            Decision::Inconclusive,
            format!("the interval contains {CENTER_DEG}°"),
        )
    };
    let angle = if ci.n > 0 {
        format!(
            "mean angle(w_c, class mean) {:.1}° ± {:.1}° (95 % t-interval, {} converged runs)",
            ci.mean, ci.ci95, ci.n
        )
    } else {
        "no converged run".into()
    };
    Claim {
        variant: variant.to_string(),
        decision,
        evidence: format!("{angle}: {why}"),
        comparisons: vec![],
    }
}

/// How the variant compares with one head.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The popular head.
    pub against: String,
    /// `tail_std(variant) - tail_std(head)` over matched seeds.
    pub diff: Paired,
    /// more stable, less stable, equivalent, undecided, or too few pairs.
    pub outcome: String,
}

/// Claim (b): `mine` and each `(head, theirs)` are per-seed tail stds of
/// converged runs, `None` where that seed did not converge (or is missing);
/// the vectors are indexed by the same seeds.
pub fn more_stable(
    variant: &str,
    mine: &[Option<f64>],
    heads: &[(String, Vec<Option<f64>>)],
) -> Claim {
    let k = heads.len().max(1);
    let alpha = 0.05 / k as f64;
    let mut comparisons = vec![];
    for (head, theirs) in heads {
        let (a, b): (Vec<f64>, Vec<f64>) = mine
            .iter()
            .zip(theirs)
            .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
            .unzip();
        let diff = paired(&a, &b, alpha);
        let outcome = if diff.n < MIN_RUNS {
            "too few pairs"
        } else if diff.hi < 0.0 {
            "more stable"
        } else if diff.lo > 0.0 {
            "less stable"
        } else if diff.lo >= -EQUIVALENCE && diff.hi <= EQUIVALENCE {
            "equivalent"
        } else {
            "undecided"
        };
        comparisons.push(Comparison {
            against: head.clone(),
            diff,
            outcome: outcome.to_string(),
        });
    }
    let count = |o: &str| comparisons.iter().filter(|c| c.outcome == o).count();
    let decided = comparisons.len() - count("too few pairs");
    let decision = if decided == 0 {
        Decision::Inconclusive
    } else if count("less stable") + count("equivalent") > 0 {
        Decision::NotSupported
    } else if count("more stable") == comparisons.len() {
        Decision::Supported
    } else {
        Decision::Inconclusive
    };
    let paired_ok: Vec<&Comparison> = comparisons
        .iter()
        .filter(|c| c.diff.n >= MIN_RUNS)
        .collect();
    let range = |f: fn(&Comparison) -> f64| {
        let v: Vec<f64> = paired_ok.iter().map(|c| f(c)).collect();
        (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let evidence = if comparisons.is_empty() {
        "no popular head in the study to compare with".to_string()
    } else if paired_ok.is_empty() {
        format!("fewer than {MIN_RUNS} seeds where both runs converged, against every head")
    } else {
        let (dlo, dhi) = range(|c| c.diff.mean_diff);
        let (plo, phi) = range(|c| c.diff.p_value);
        let counts: Vec<String> = [
            "more stable",
            "less stable",
            "equivalent",
            "undecided",
            "too few pairs",
        ]
        .iter()
        .filter(|o| count(o) > 0)
        .map(|o| format!("{o} {}", count(o)))
        .collect();
        format!(
            "against {} popular heads: {}; tail-std difference (this variant minus the head) {:+.2} to {:+.2} pts, \
             p = {:.3} to {:.3} ({:.1} % paired t intervals)",
            comparisons.len(),
            counts.join(", "),
            100.0 * dlo,
            100.0 * dhi,
            plo,
            phi,
            100.0 * (1.0 - alpha)
        )
    };
    Claim {
        variant: variant.to_string(),
        decision,
        evidence,
        comparisons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centers_rule_has_three_outcomes() {
        assert_eq!(
            weights_are_centers("s", &[4.0, 5.0, 4.5], 3).decision,
            Decision::Supported
        );
        assert_eq!(
            weights_are_centers("s", &[60.0, 62.0, 58.0], 3).decision,
            Decision::NotSupported
        );
        // Straddles 15 degrees.
        assert_eq!(
            weights_are_centers("s", &[5.0, 25.0, 14.0], 3).decision,
            Decision::Inconclusive
        );
        // One seed (or one converged run): no interval.
        let one = weights_are_centers("s", &[4.0], 3);
        assert_eq!(one.decision, Decision::Inconclusive);
        assert!(one.evidence.contains("1 of 3"), "{}", one.evidence);
        assert_eq!(
            weights_are_centers("s", &[], 3).decision,
            Decision::Inconclusive
        );
    }

    fn some(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().copied().map(Some).collect()
    }

    #[test]
    fn stability_rule_finds_a_planted_difference() {
        let mine = some(&[0.002, 0.0025, 0.0022, 0.0021]);
        let heads = vec![
            ("softmax".to_string(), some(&[0.010, 0.011, 0.012, 0.0105])),
            (
                "cosface".to_string(),
                some(&[0.009, 0.0095, 0.0098, 0.0092]),
            ),
        ];
        let c = more_stable("sym", &mine, &heads);
        assert_eq!(c.decision, Decision::Supported, "{}", c.evidence);
        assert!(c.comparisons.iter().all(|x| x.outcome == "more stable"));
        // The reverse is a clear "less stable": not supported.
        let c = more_stable("sym", &heads[0].1, &[("normface".into(), mine.clone())]);
        assert_eq!(c.decision, Decision::NotSupported);
    }

    #[test]
    fn stability_rule_on_identical_groups_and_one_seed() {
        let g = some(&[0.004, 0.005, 0.006]);
        let c = more_stable("sym", &g, &[("softmax".into(), g.clone())]);
        assert_eq!(c.decision, Decision::NotSupported, "{}", c.evidence);
        assert_eq!(c.comparisons[0].outcome, "equivalent");
        // One seed: no interval, inconclusive.
        let c = more_stable("sym", &some(&[0.001]), &[("softmax".into(), some(&[0.01]))]);
        assert_eq!(c.decision, Decision::Inconclusive);
        // Pairs need both runs converged.
        let c = more_stable(
            "sym",
            &[Some(0.001), None, Some(0.002)],
            &[("softmax".into(), vec![None, Some(0.01), Some(0.01)])],
        );
        assert_eq!(c.comparisons[0].diff.n, 1);
        assert_eq!(c.decision, Decision::Inconclusive);
        // Noisy differences of both signs: undecided, inconclusive.
        let c = more_stable(
            "sym",
            &some(&[0.001, 0.02, 0.003]),
            &[("softmax".into(), some(&[0.015, 0.002, 0.01]))],
        );
        assert_eq!(c.comparisons[0].outcome, "undecided");
        assert_eq!(c.decision, Decision::Inconclusive);
        assert_eq!(more_stable("sym", &g, &[]).decision, Decision::Inconclusive);
    }
}
