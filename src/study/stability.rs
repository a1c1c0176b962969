//! Stability of a learning curve (the paper's headline claim is a more
//! stable curve, not a higher accuracy), per run and per head over seeds.

use crate::run_dir::EpochMetrics;
use crate::statistics::mean;
use serde::Serialize;

/// Stability measures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStability {
    /// Test accuracy after the last epoch.
    pub final_acc: f64,
    /// Best test accuracy over the epochs.
    pub best_acc: f64,
    /// Standard deviation of the test accuracy over the last `k` epochs.
    pub last_k_std: f64,
    /// The `k` used.
    pub k: usize,
    /// Epoch-to-epoch decreases of the test accuracy.
    pub drops: usize,
    /// Largest such decrease (accuracy points as a fraction).
    pub max_drop: f64,
    /// Sum of the decreases.
    pub total_drop: f64,
    /// Epochs whose mean training loss rose above the previous epoch's.
    pub loss_spikes: usize,
    /// First epoch (1-based) reaching 95 % of the final accuracy.
    pub epochs_to_95: Option<usize>,
    /// The run stopped with a non-finite loss.
    pub diverged: bool,
}

/// Measure one run's history; `k` epochs for the tail deviation.
pub fn measure(history: &[EpochMetrics], k: usize, diverged: bool) -> Option<RunStability> {
    let last = history.last()?;
    let accs: Vec<f64> = history.iter().map(|m| m.test_acc).collect();
    let k = k.clamp(1, accs.len());
    let tail = &accs[accs.len() - k..];
    let drops: Vec<f64> = accs
        .windows(2)
        .map(|w| w[0] - w[1])
        .filter(|d| *d > 0.0)
        .collect();
    let spikes = history
        .windows(2)
        .filter(|w| w[1].train_loss > w[0].train_loss)
        .count();
    Some(RunStability {
        final_acc: last.test_acc,
        best_acc: accs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        last_k_std: std(tail),
        k,
        drops: drops.len(),
        max_drop: drops.iter().cloned().fold(0.0, f64::max),
        total_drop: drops.iter().sum(),
        loss_spikes: spikes,
        epochs_to_95: accs
            .iter()
            .position(|&a| a >= 0.95 * last.test_acc)
            .map(|i| i + 1),
        diverged,
    })
}

/// Population standard deviation (0 for fewer than 2 values).
pub fn std(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(accs: &[f64], losses: &[f64]) -> Vec<EpochMetrics> {
        accs.iter()
            .zip(losses)
            .enumerate()
            .map(|(i, (&a, &l))| EpochMetrics {
                epoch: i + 1,
                lr: 0.1,
                train_loss: l,
                train_acc: a,
                test_loss: l,
                test_acc: a,
                seconds: 1.0,
                images_per_s: 1.0,
                reg_loss: None,
                sparsity: None,
                weight_entropy: None,
                tau: None,
                dead_weight_fraction: None,
                frozen_sign_fraction: None,
                quant_error: None,
            })
            .collect()
    }

    #[test]
    fn measures_match_hand_computation() {
        let h = hist(&[0.5, 0.8, 0.7, 0.9, 0.85], &[2.0, 1.0, 1.2, 0.8, 0.9]);
        let s = measure(&h, 3, false).unwrap();
        assert_eq!(s.final_acc, 0.85);
        assert_eq!(s.best_acc, 0.9);
        assert_eq!(s.drops, 2);
        assert!((s.max_drop - 0.1).abs() < 1e-12);
        assert!((s.total_drop - 0.15).abs() < 1e-12);
        assert_eq!(s.loss_spikes, 2);
        assert_eq!(s.epochs_to_95, Some(4)); // 95 % of 0.85 is 0.8075: first reached at epoch 4
        let tail = [0.7, 0.9, 0.85];
        let m = tail.iter().sum::<f64>() / 3.0;
        let want = (tail.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 3.0).sqrt();
        assert!((s.last_k_std - want).abs() < 1e-12);
        assert!(measure(&[], 3, false).is_none());
    }
}
