//! Statistics of learning curves and of seeds, pure f64: the convergence
//! test the trainer stops on and the report decides with, Student-t
//! intervals over seeds, and paired comparisons.
//!
//! - Convergence (one run): an ordinary least-squares line through the last
//!   `W` test accuracies. The curve has **not converged** when its slope is
//!   both practically large (`|b| > min_slope`, accuracy per epoch) and
//!   statistically visible (one-sided at 90 %: `|b| / se(b) > t_{0.90, W-2}`,
//!   a deliberately low bar, so that a rise hidden in noise still keeps the
//!   run training); otherwise it has plateaued. A steadily rising curve fails the test, a flat noisy one
//!   passes it (noise widens `se(b)`), and so does a curve still creeping up
//!   by less than `min_slope` per epoch.
//! - Tail stability: the standard deviation of the residuals of that line
//!   (`sqrt(RSS / (W - 2))`): the epoch-to-epoch scatter of the plateau,
//!   not its trend.
//! - Intervals: mean +- `t_{0.975, n-1} s / sqrt(n)` over seeds (Student t,
//!   two-sided 95 %); none for fewer than two values.
//! - Paired comparison: the same interval on per-seed differences, at a
//!   given confidence level, with the two-sided paired t-test p-value.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided Student-t quantile `t_{1 - alpha/2, df}` (`df >= 1`).
pub fn t_quantile(alpha: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(1.0 - alpha / 2.0),
        Err(_) => f64::NAN,
    }
}

/// Two-sided p-value of a t statistic with `df` degrees of freedom.
pub fn t_p_value(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) => (2.0 * (1.0 - d.cdf(t.abs()))).clamp(0.0, 1.0),
        Err(_) => f64::NAN,
    }
}

/// Arithmetic mean (NaN for no value).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (`n - 1`; NaN for fewer than two values).
pub fn sample_std(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// A mean over seeds with its two-sided 95 % Student-t interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanCi {
    /// Mean over the values (NaN for none; JSON `null`).
    pub mean: f64,
    /// Half-width of the 95 % interval (NaN for fewer than two values).
    pub ci95: f64,
    /// Number of values.
    pub n: usize,
}

impl MeanCi {
    /// Of `v` (non-finite values are left out).
    pub fn of(v: &[f64]) -> Self {
        Self::at(v, 0.05)
    }

    /// Of `v`, with a `1 - alpha` interval.
    pub fn at(v: &[f64], alpha: f64) -> Self {
        let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        let ci95 = if n >= 2 {
            t_quantile(alpha, (n - 1) as f64) * sample_std(&v) / (n as f64).sqrt()
        } else {
            f64::NAN
        };
        Self {
            mean: mean(&v),
            ci95,
            n,
        }
    }

    /// Lower end of the interval.
    pub fn lo(&self) -> f64 {
        self.mean - self.ci95
    }

    /// Upper end of the interval.
    pub fn hi(&self) -> f64 {
        self.mean + self.ci95
    }
}

/// Least-squares line through `y` at `x = 0, 1, ...`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Slope per step.
    pub slope: f64,
    /// Its standard error (`sqrt(RSS / (n - 2) / Sxx)`).
    pub se: f64,
    /// Residual standard deviation `sqrt(RSS / (n - 2))`.
    pub residual_std: f64,
    /// Points.
    pub n: usize,
}

/// The OLS line through `y` (None for fewer than three points or a
/// non-finite value).
pub fn fit_line(y: &[f64]) -> Option<Line> {
    let n = y.len();
    if n < 3 || y.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let xm = (n - 1) as f64 / 2.0;
    let ym = mean(y);
    let sxx: f64 = (0..n).map(|i| (i as f64 - xm).powi(2)).sum();
    let sxy: f64 = y
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64 - xm) * (v - ym))
        .sum();
    let slope = sxy / sxx;
    let rss: f64 = y
        .iter()
        .enumerate()
        .map(|(i, v)| (v - ym - slope * (i as f64 - xm)).powi(2))
        .sum();
    let residual_std = (rss / (n - 2) as f64).sqrt();
    Some(Line {
        slope,
        se: residual_std / sxx.sqrt(),
        residual_std,
        n,
    })
}

/// What the convergence test says of a curve's last epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    /// Plateaued (no clear slope above the threshold).
    Flat,
    /// Still rising clearly.
    Rising,
    /// Falling clearly.
    Falling,
}

/// The convergence test on the last `window` values of `curve`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    /// Flat (converged), rising or falling.
    pub trend: Trend,
    /// OLS slope over the window (per epoch).
    pub slope: f64,
    /// `slope / se(slope)` (infinite for an exact straight line).
    pub t: f64,
    /// Residual standard deviation over the window (the tail stability).
    pub tail_std: f64,
    /// Epochs in the window.
    pub window: usize,
}

impl Convergence {
    /// The curve has plateaued.
    pub fn converged(&self) -> bool {
        self.trend == Trend::Flat
    }
}

/// The convergence test (module docs) on the last `window` points of
/// `curve`; None while the curve is shorter than the window (or the
/// window is below 3).
pub fn convergence(curve: &[f64], window: usize, min_slope: f64) -> Option<Convergence> {
    if window < 3 || curve.len() < window {
        return None;
    }
    let line = fit_line(&curve[curve.len() - window..])?;
    let t = if line.se > 0.0 {
        line.slope / line.se
    } else if line.slope == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(line.slope)
    };
    // One-sided 90 %: the two-sided quantile at alpha = 0.2.
    let clear = t.abs() > t_quantile(0.2, (window - 2) as f64);
    let trend = if clear && line.slope > min_slope {
        Trend::Rising
    } else if clear && line.slope < -min_slope {
        Trend::Falling
    } else {
        Trend::Flat
    };
    Some(Convergence {
        trend,
        slope: line.slope,
        t,
        tail_std: line.residual_std,
        window,
    })
}

/// A paired comparison `a - b` over matched values (seeds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Mean difference `a - b`.
    pub mean_diff: f64,
    /// Lower end of the interval at the requested level.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Two-sided paired t-test p-value (NaN for fewer than two pairs).
    pub p_value: f64,
    /// Pairs.
    pub n: usize,
    /// Confidence level of `[lo, hi]`.
    pub level: f64,
}

/// Paired t interval of `a_i - b_i` at level `1 - alpha`, with the
/// two-sided p-value. With zero spread, the interval is the point and the
/// p-value 1 (no difference) or 0 (a constant non-zero difference).
pub fn paired(a: &[f64], b: &[f64], alpha: f64) -> Paired {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let m = mean(&d);
    let (lo, hi, p) = if n < 2 {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        let se = sample_std(&d) / (n as f64).sqrt();
        let df = (n - 1) as f64;
        if se == 0.0 {
            (m, m, if m == 0.0 { 1.0 } else { 0.0 })
        } else {
            let h = t_quantile(alpha, df) * se;
            (m - h, m + h, t_p_value(m / se, df))
        }
    };
    Paired {
        mean_diff: m,
        lo,
        hi,
        p_value: p,
        n,
        level: 1.0 - alpha,
    }
}

/// Pearson's correlation of `a` and `b` (NaN with fewer than 2 pairs or a
/// constant side).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return f64::NAN;
    }
    let (ma, mb) = (mean(&a[..n]), mean(&b[..n]));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b).take(n) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Ranks from 1, ties given their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = rank;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (Pearson's on the ranks, ties averaged).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pearson against a hand computation, Spearman on ties and a monotone
    /// transform.
    #[test]
    fn correlations_match_hand_values() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [2.0, 1.0, 4.0, 3.0];
        // cov = (-1.5*-0.5 + -0.5*-1.5 + 0.5*1.5 + 1.5*0.5) = 3; var = 5 each
        assert!((pearson(&a, &b) - 0.6).abs() < 1e-12);
        let cubed: Vec<f64> = b.iter().map(|x: &f64| x.powi(3)).collect();
        assert!((spearman(&a, &cubed) - 0.6).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        assert!(pearson(&[1.0], &[2.0]).is_nan());
        assert!((spearman(&a, &a) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Tables of Student's t: t_{0.975, 1} = 12.706, t_{0.975, 2} = 4.303,
        // t_{0.975, 4} = 2.776, t_{0.975, 30} = 2.042.
        for (df, want) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (30.0, 2.042)] {
            assert!((t_quantile(0.05, df) - want).abs() < 2e-3, "df {df}");
        }
        assert!((t_p_value(2.776, 4.0) - 0.05).abs() < 1e-3);
        assert!((t_p_value(0.0, 4.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn interval_is_the_textbook_one() {
        let v = [0.80, 0.82, 0.84];
        let ci = MeanCi::of(&v);
        // s = 0.02, t_{0.975, 2} = 4.3027, half-width 4.3027 * 0.02 / sqrt 3.
        assert!((ci.mean - 0.82).abs() < 1e-12);
        assert!((ci.ci95 - 4.302_652_7 * 0.02 / 3f64.sqrt()).abs() < 1e-6);
        let one = MeanCi::of(&[0.5]);
        assert_eq!(one.n, 1);
        assert!(one.ci95.is_nan());
        assert_eq!(MeanCi::of(&[0.5, f64::NAN]).n, 1);
    }

    #[test]
    fn line_fit_matches_a_closed_form() {
        // y = 2 + 0.5 x exactly: slope 0.5, no residual.
        let y: Vec<f64> = (0..6).map(|i| 2.0 + 0.5 * i as f64).collect();
        let l = fit_line(&y).unwrap();
        assert!((l.slope - 0.5).abs() < 1e-12 && l.residual_std < 1e-12);
        // Residuals +e, -2e, +e around a flat line: RSS = 6 e^2, n - 2 = 1.
        let e = 0.01;
        let l = fit_line(&[e, -2.0 * e, e]).unwrap();
        assert!(l.slope.abs() < 1e-15);
        assert!((l.residual_std - (6.0f64).sqrt() * e).abs() < 1e-12);
        assert!(fit_line(&[1.0, 2.0]).is_none());
    }

    #[test]
    fn a_rising_curve_has_not_converged_and_a_flat_noisy_one_has() {
        // Rising 1 point per epoch with small noise.
        let rising = [0.70, 0.712, 0.719, 0.731, 0.740, 0.751];
        let c = convergence(&rising, 5, 0.001).unwrap();
        assert_eq!(c.trend, Trend::Rising, "{c:?}");
        assert!(!c.converged());
        // Flat with +-1.5 points of noise.
        let noisy = [0.85, 0.88, 0.86, 0.835, 0.87, 0.85, 0.865];
        let c = convergence(&noisy, 5, 0.001).unwrap();
        assert!(c.converged(), "{c:?}");
        assert!(c.tail_std > 0.005);
        // Falling clearly.
        let falling = [0.9, 0.88, 0.86, 0.84, 0.82];
        assert_eq!(
            convergence(&falling, 5, 0.001).unwrap().trend,
            Trend::Falling
        );
        // Creeping up below the threshold, exactly linear: flat.
        let creeping: Vec<f64> = (0..5).map(|i| 0.9 + 0.0005 * i as f64).collect();
        assert!(convergence(&creeping, 5, 0.001).unwrap().converged());
        // Too short.
        assert!(convergence(&rising[..4], 5, 0.001).is_none());
        assert!(convergence(&rising, 2, 0.001).is_none());
    }

    #[test]
    fn paired_comparison_finds_a_planted_difference_and_not_a_null_one() {
        let a = [0.010, 0.012, 0.011, 0.009];
        let b = [0.030, 0.031, 0.029, 0.032];
        let p = paired(&a, &b, 0.05);
        assert!(p.hi < 0.0 && p.p_value < 0.01, "{p:?}");
        let same = paired(&b, &b, 0.05);
        assert_eq!((same.lo, same.hi, same.p_value), (0.0, 0.0, 1.0));
        assert!(paired(&a[..1], &b[..1], 0.05).p_value.is_nan());
        // Independent check of the p-value: d = (1, 2, 3), mean 2, s = 1,
        // t = 2 sqrt 3 = 3.464 with 2 df: p = 0.0742 (tables).
        let p = paired(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0], 0.05);
        assert!((p.p_value - 0.0742).abs() < 5e-4, "{}", p.p_value);
    }
}
