//! Learning-rate schedules, evaluated per optimizer step (the PyTorch peer
//! `bench/torch_train.py` computes the same function).
//!
//! With `t` the 0-based global step, `T` the total steps and `W` the warm-up
//! steps: warm-up `lr (t+1)/W` for `t < W`; then `const`: `lr`;
//! `cosine`: `lr (1 + cos(pi (t - W)/(T - W))) / 2`;
//! `multistep`: `lr gamma^k`, k = number of milestones <= current epoch.

use anyhow::{Result, bail};

/// A schedule after warm-up.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Constant learning rate.
    Const,
    /// Cosine decay to 0 over the remaining steps.
    Cosine,
    /// Multiply by `gamma` at each milestone epoch.
    MultiStep {
        /// Epochs (0-based) from which each factor applies.
        milestones: Vec<usize>,
        /// Factor.
        gamma: f64,
    },
}

impl Schedule {
    /// Parse `const`, `cosine` or `multistep`.
    pub fn parse(name: &str, milestones: &[usize], gamma: f64) -> Result<Self> {
        Ok(match name {
            "const" | "constant" => Self::Const,
            "cosine" => Self::Cosine,
            "multistep" => {
                if milestones.is_empty() {
                    bail!("schedule multistep needs milestones (e.g. --milestones 80,120)");
                }
                Self::MultiStep {
                    milestones: milestones.to_vec(),
                    gamma,
                }
            }
            other => bail!("schedule {other:?}: expected const, cosine or multistep"),
        })
    }

    /// Learning rate at global step `t` (0-based).
    pub fn lr(
        &self,
        base: f64,
        t: usize,
        steps_per_epoch: usize,
        epochs: usize,
        warmup_epochs: usize,
    ) -> f64 {
        let warm = warmup_epochs * steps_per_epoch;
        if t < warm {
            return base * (t + 1) as f64 / warm as f64;
        }
        match self {
            Self::Const => base,
            Self::Cosine => {
                let total = (epochs * steps_per_epoch).saturating_sub(warm).max(1);
                let p = (t - warm) as f64 / total as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
            Self::MultiStep { milestones, gamma } => {
                let epoch = t / steps_per_epoch.max(1);
                let k = milestones.iter().filter(|&&m| m <= epoch).count();
                base * gamma.powi(k as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_reaches_zero() {
        let s = Schedule::Cosine;
        assert!((s.lr(1.0, 0, 10, 5, 1) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 9, 10, 5, 1) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 10, 5, 1) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 30, 10, 5, 1) - 0.5).abs() < 1e-12);
        assert!(s.lr(1.0, 49, 10, 5, 1) < 0.01);
    }

    #[test]
    fn multistep_applies_from_the_milestone_epoch() {
        let s = Schedule::parse("multistep", &[2, 4], 0.1).unwrap();
        assert_eq!(s.lr(1.0, 19, 10, 6, 0), 1.0);
        assert!((s.lr(1.0, 20, 10, 6, 0) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 45, 10, 6, 0) - 0.01).abs() < 1e-12);
        assert!(Schedule::parse("multistep", &[], 0.1).is_err());
    }
}
