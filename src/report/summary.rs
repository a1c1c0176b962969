//! What the report says, as `summary.json`: per variant over seeds
//! ([`VariantSummary`]), the two claims decided ([`Claims`], by the rules
//! of `claims.rs`), the further findings ([`verdict`]) and the rules as
//! stated.

use super::claims::{self, Claim};
use super::run::{
    Conditions, RunData, TAIL_EPOCHS, TRAJECTORIES, final_angle, final_probe, learnable,
};
use crate::statistics::{MeanCi, mean};
use crate::study::stability::RunStability;
use serde::Serialize;
use std::collections::BTreeMap;

/// Tolerance under which a measured condition holds.
pub const CONDITION_TOL: f64 = 0.01;

/// The measured weight conditions of a variant, over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct VariantConditions {
    /// `max_c ||w_c| - 1|` (after the head's own normalisation).
    pub unit_norm_dev: MeanCi,
    /// `|mean_c w_c|`.
    pub mean_weight_norm: MeanCi,
    /// Energy outside the best plane.
    pub coplanarity: MeanCi,
    /// Unit norm holds (mean deviation < [`CONDITION_TOL`]).
    pub unit: bool,
    /// Zero sum holds.
    pub zero_sum: bool,
    /// Coplanarity holds.
    pub coplanar: bool,
    /// The weights are learned (false: a fixed layout).
    pub learnable: bool,
}

impl VariantConditions {
    /// "unit + zero-sum + coplanar, learned"
    pub fn words(&self) -> String {
        let mut held = vec![];
        if self.unit {
            held.push("unit");
        }
        if self.zero_sum {
            held.push("zero-sum");
        }
        if self.coplanar {
            held.push("coplanar");
        }
        format!(
            "{}; {}",
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(" + ")
            },
            if self.learnable { "learned" } else { "fixed" }
        )
    }
}

/// Per variant (within one dataset and net), over seeds. Intervals:
/// `statistics::MeanCi` (mean and 95 % Student-t half-width).
#[derive(Debug, Clone, Serialize)]
pub struct VariantSummary {
    /// Dataset and net.
    pub group: String,
    /// Variant name.
    pub name: String,
    /// Head.
    pub head: String,
    /// What the head sees (relu, linear, bn).
    pub feature_act: String,
    /// Head parameters given (defaults not repeated).
    pub head_params: BTreeMap<String, f64>,
    /// Runs found (seeds).
    pub runs: usize,
    /// Runs that diverged.
    pub diverged: usize,
    /// Runs that failed (an error other than divergence; see `failed.json`).
    pub failed: usize,
    /// Runs that passed the convergence test.
    pub converged_runs: usize,
    /// Per run: "seed k: converged by epoch N" or "not converged by epoch N ...".
    pub convergence: Vec<String>,
    /// Epochs trained.
    pub epochs: MeanCi,
    /// Final test accuracy (runs that did not diverge).
    pub final_acc: MeanCi,
    /// Best test accuracy.
    pub best_acc: MeanCi,
    /// Final mean angle(w_c, class mean), degrees (every run with a probe).
    pub angle_w_mean_deg: MeanCi,
    /// The same over converged runs only (what claim (a) decides on).
    pub angle_w_mean_deg_converged: MeanCi,
    /// Tail stability of converged runs: residual std of the test accuracy
    /// around a line over the last epochs (fraction).
    pub tail_std: MeanCi,
    /// Test-accuracy drops per run (mean).
    pub drops: f64,
    /// Training-loss spikes per run (mean).
    pub loss_spikes: f64,
    /// Conditions of the final weights.
    pub conditions: Option<VariantConditions>,
    /// Final value of each trajectory, by key of [`TRAJECTORIES`].
    pub geometry: BTreeMap<String, MeanCi>,
}

/// The two claims, one decision per symmetrical-layer variant each.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// (a) the layer's weights are the class centers.
    pub weights_are_centers: Vec<Claim>,
    /// (b) its learning curve is more stable than the popular heads'.
    pub more_stable: Vec<Claim>,
}

/// Everything the report says, as `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The question the study answers.
    pub question: String,
    /// The study's description.
    pub description: String,
    /// Settings shared by the runs.
    pub settings: BTreeMap<String, String>,
    /// The decision rules, as stated.
    pub rules: Vec<String>,
    /// The two claims.
    pub claims: Claims,
    /// Per variant.
    pub variants: Vec<VariantSummary>,
    /// Further findings, sentence by sentence.
    pub verdict: Vec<String>,
    /// Runs that were found but had no metrics yet.
    pub unfinished: Vec<String>,
    /// Figures written (stems under `figures/`).
    pub figures: Vec<String>,
}

/// The question at the top of the report.
pub const QUESTION: &str = "Do the class weights of the classification layer sit at the class centers, and does the \
     symmetrical layer (unit, coplanar, zero-sum weights; Kansizoglou et al., IEEE TNNLS 2022) make them so and \
     train more stably than the popular heads?";

pub(crate) fn group_of(r: &RunData) -> String {
    format!("{} / {}", r.config.dataset, r.config.net)
}

pub(crate) fn summarise(runs: &[&RunData], group: &str, name: &str) -> VariantSummary {
    let first = runs[0];
    let ok: Vec<&RunData> = runs
        .iter()
        .copied()
        .filter(|r| r.diverged.is_none() && r.failed.is_none())
        .collect();
    let st: Vec<&RunStability> = ok.iter().filter_map(|r| r.stability.as_ref()).collect();
    let col = |f: &dyn Fn(&RunStability) -> f64| -> Vec<f64> { st.iter().map(|s| f(s)).collect() };
    let mut geometry = BTreeMap::new();
    for (key, q, _) in TRAJECTORIES {
        let v: Vec<f64> = ok.iter().filter_map(|r| final_probe(r, q)).collect();
        if !v.is_empty() {
            geometry.insert(key.to_string(), MeanCi::of(&v));
        }
    }
    let converged: Vec<&RunData> = ok.iter().copied().filter(|r| r.converged()).collect();
    let conds: Vec<Conditions> = ok.iter().filter_map(|r| r.conditions).collect();
    let conditions = (!conds.is_empty()).then(|| {
        let c = |f: fn(&Conditions) -> f64| MeanCi::of(&conds.iter().map(f).collect::<Vec<_>>());
        let (u, z, p) = (
            c(|c| c.unit_norm_dev),
            c(|c| c.mean_weight_norm),
            c(|c| c.coplanarity),
        );
        VariantConditions {
            unit: u.mean < CONDITION_TOL,
            zero_sum: z.mean < CONDITION_TOL,
            coplanar: p.mean < CONDITION_TOL,
            unit_norm_dev: u,
            mean_weight_norm: z,
            coplanarity: p,
            learnable: learnable(&first.config.head),
        }
    });
    VariantSummary {
        group: group.to_string(),
        name: name.to_string(),
        head: first.config.head.clone(),
        feature_act: first.config.feature_act.clone(),
        head_params: first.config.head_params.clone(),
        runs: runs.len(),
        diverged: runs.iter().filter(|r| r.diverged.is_some()).count(),
        failed: runs.iter().filter(|r| r.failed.is_some()).count(),
        converged_runs: converged.len(),
        convergence: runs
            .iter()
            .map(|r| format!("seed {}: {}", r.config.seed, r.convergence_words()))
            .collect(),
        epochs: MeanCi::of(
            &ok.iter()
                .map(|r| r.history.len() as f64)
                .collect::<Vec<_>>(),
        ),
        final_acc: MeanCi::of(&col(&|s| s.final_acc)),
        best_acc: MeanCi::of(&col(&|s| s.best_acc)),
        angle_w_mean_deg: MeanCi::of(&ok.iter().filter_map(|r| final_angle(r)).collect::<Vec<_>>()),
        angle_w_mean_deg_converged: MeanCi::of(
            &converged
                .iter()
                .filter_map(|r| final_angle(r))
                .collect::<Vec<_>>(),
        ),
        tail_std: MeanCi::of(
            &converged
                .iter()
                .filter_map(|r| r.convergence.map(|c| c.tail_std))
                .collect::<Vec<_>>(),
        ),
        drops: mean(&col(&|s| s.drops as f64)),
        loss_spikes: mean(&col(&|s| s.loss_spikes as f64)),
        conditions,
        geometry,
    }
}

/// Decide both claims for every symmetrical-layer variant of each group.
pub(crate) fn decide(runs: &[RunData], variants: &[VariantSummary]) -> Claims {
    let mut claims = Claims {
        weights_are_centers: vec![],
        more_stable: vec![],
    };
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.config.seed).collect();
    seeds.sort();
    seeds.dedup();
    let tails = |group: &str, variant: &str| -> Vec<Option<f64>> {
        seeds
            .iter()
            .map(|&s| {
                runs.iter()
                    .find(|r| group_of(r) == group && r.variant == variant && r.config.seed == s)
                    .filter(|r| r.converged())
                    .and_then(|r| r.convergence.map(|c| c.tail_std))
            })
            .collect()
    };
    let groups: std::collections::BTreeSet<&str> =
        variants.iter().map(|v| v.group.as_str()).collect();
    let prefix = |g: &str, name: &str| {
        if groups.len() > 1 {
            format!("{g}: {name}")
        } else {
            name.to_string()
        }
    };
    for v in variants.iter().filter(|v| v.head == "symmetrical") {
        let angles: Vec<f64> = runs
            .iter()
            .filter(|r| group_of(r) == v.group && r.variant == v.name && r.converged())
            .filter_map(final_angle)
            .collect();
        let mut a = claims::weights_are_centers(&v.name, &angles, v.runs);
        a.variant = prefix(&v.group, &v.name);
        claims.weights_are_centers.push(a);
        let popular: Vec<(String, Vec<Option<f64>>)> = variants
            .iter()
            .filter(|h| {
                h.group == v.group
                    && claims::POPULAR.contains(&h.head.as_str())
                    && h.feature_act == "relu"
            })
            .map(|h| (h.name.clone(), tails(&h.group, &h.name)))
            .collect();
        let mut b = claims::more_stable(&v.name, &tails(&v.group, &v.name), &popular);
        b.variant = prefix(&v.group, &v.name);
        claims.more_stable.push(b);
    }
    claims
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", 100.0 * v)
    } else {
        "n/a".into()
    }
}

/// Further findings in plain words, from the measured numbers.
pub fn verdict(variants: &[VariantSummary]) -> Vec<String> {
    let mut out = vec![];
    for v in variants {
        if v.converged_runs < v.runs.saturating_sub(v.diverged + v.failed) {
            out.push(format!(
                "[{}] {}: {} of {} runs converged ({}); its stability figures use converged runs only.",
                v.group,
                v.name,
                v.converged_runs,
                v.runs,
                v.convergence.join("; ")
            ));
        }
        if v.final_acc.mean < 0.3 {
            out.push(format!(
                "[{}] {}: near chance ({}); a flat curve that does not learn is 'stable' and says little.",
                v.group,
                v.name,
                pct(v.final_acc.mean)
            ));
        }
        if v.diverged > 0 {
            out.push(format!(
                "[{}] {}: {} of {} runs diverged.",
                v.group, v.name, v.diverged, v.runs
            ));
        }
        if v.failed > 0 {
            out.push(format!(
                "[{}] {}: {} of {} runs failed ({}); the figures use the others, and a new `symfeat study` on this directory retries them.",
                v.group,
                v.name,
                v.failed,
                v.runs,
                v.convergence.join("; ")
            ));
        }
    }
    let sym: Vec<&VariantSummary> = variants
        .iter()
        .filter(|v| v.head == "symmetrical")
        .collect();
    for s in &sym {
        if let Some(best) = variants
            .iter()
            .filter(|v| v.group == s.group && v.final_acc.mean.is_finite())
            .max_by(|a, b| a.final_acc.mean.total_cmp(&b.final_acc.mean))
        {
            out.push(format!(
                "[{}] {} reaches {} (± {:.2} pts) against {} for the best variant, {}: the paper claims stability, not accuracy.",
                s.group,
                s.name,
                pct(s.final_acc.mean),
                100.0 * s.final_acc.ci95,
                pct(best.final_acc.mean),
                best.name
            ));
        }
    }
    out
}

/// The decision rules, stated for the report.
pub fn rules() -> Vec<String> {
    vec![
        format!(
            "Converged: an OLS line through the test accuracy of the last W epochs (W = the plateau window, {TAIL_EPOCHS} without one); \
             not converged when its slope exceeds the threshold and |t| > t(0.90, W - 2) (one-sided, a low bar). With a plateau window, the test \
             is the one that stopped the run (before its annealing epochs). Tail std: the residual std of that line."
        ),
        "Intervals: mean ± t(0.975, n - 1) s / sqrt(n) over seeds (Student t, 95 %).".into(),
        format!(
            "(a) weights are the class centers: over converged runs, the 95 % interval of the final mean angle(w_c, class mean) \
             lies below {}° (supported), above it (not supported), or contains it / fewer than {} converged runs (inconclusive).",
            claims::CENTER_DEG,
            claims::MIN_RUNS
        ),
        format!(
            "(b) more stable than the popular heads ({}, relu features): per head, a paired t interval (Bonferroni over the heads) \
             of the tail-std difference over seeds where both converged: below 0 more stable, above 0 less stable, within ±{:.2} pts \
             equivalent. Supported when more stable than every head; not supported when less stable than or equivalent to one; \
             otherwise inconclusive.",
            claims::POPULAR.join(", "),
            100.0 * claims::EQUIVALENCE
        ),
    ]
}
