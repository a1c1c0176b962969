//! ReCU's diagnostics of binary weights (Xu et al., ICCV 2021; field notes
//! §8.2), in f64 on the host.
//!
//! - **Dead weights.** The paper calls "dead" the weights in the tails of
//!   the (Laplace-like) distribution, which barely move and rarely change
//!   sign; ReCU clamps them at `Q(tau)`. Here: the share of standardised
//!   weights with `|w1| > Q(tau)` at the epoch's tau (for `sign` runs too,
//!   which do not clamp them: the same yardstick). A second measure, the
//!   share of binary weights whose sign did not change during the epoch
//!   (`frozen_sign_fraction`), is logged beside it.
//! - **Quantisation error**: mean `|w2 - a sign(w2)|` over the binary
//!   layers' weights as binarised (`w2`: standardised, clamped for recu),
//!   `a = mean |w2|` per output channel (the L1-optimal scale).
//! - **Entropy** of the binary weights: per layer, `H(p)` in bits with `p`
//!   the share of +1 signs; the mean over layers.

use super::LayerRows;

/// ReCU's per-row standardisation (`w1`, see `nets::binary::recu`).
pub fn standardized(w: &[f32], k: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(w.len());
    for row in w.chunks(k.max(1)) {
        let n = row.len() as f64;
        let m = row.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = row.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let s = (var + 1e-5).sqrt() / (2.0 * std::f64::consts::SQRT_2);
        out.extend(row.iter().map(|&x| (x as f64 - m) / s));
    }
    out
}

/// `Q(tau) = -b ln(2 - 2 tau)`, `b = mean |w1|` (one per layer).
pub fn q_tau(w1: &[f64], tau: f64) -> f64 {
    let b = w1.iter().map(|x| x.abs()).sum::<f64>() / w1.len().max(1) as f64;
    -b * (2.0 - 2.0 * tau).ln()
}

/// The share of `w1` beyond the clamp `Q(tau)`.
pub fn clamped_fraction(w1: &[f64], tau: f64) -> f64 {
    let q = q_tau(w1, tau);
    w1.iter().filter(|x| x.abs() > q).count() as f64 / w1.len().max(1) as f64
}

/// Binary entropy in bits of a share `p`.
fn entropy_bits(p: f64) -> f64 {
    [p, 1.0 - p]
        .iter()
        .filter(|&&q| q > 0.0)
        .map(|q| -q * q.log2())
        .sum()
}

/// The signs of the binary weights (true: +1), per layer.
pub fn signs(layers: &[LayerRows]) -> Vec<Vec<bool>> {
    layers
        .iter()
        .map(|l| standardized(&l.w, l.k).iter().map(|&x| x >= 0.0).collect())
        .collect()
}

/// One epoch's diagnostics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diagnostics {
    /// Share of weights with `|w1| > Q(tau)`.
    pub dead_weight_fraction: f64,
    /// Mean `|w2 - a sign(w2)|`.
    pub quant_error: f64,
    /// Mean over layers of the sign entropy, bits.
    pub weight_entropy: f64,
    /// Share of signs unchanged since `before` (None without it).
    pub frozen_sign_fraction: Option<f64>,
}

/// The diagnostics of `layers` at `tau`; `clamp`: the weights are binarised
/// after ReCU's clamp; `before`: the signs at the start of the epoch.
pub fn diagnose(
    layers: &[LayerRows],
    tau: f64,
    clamp: bool,
    before: Option<&[Vec<bool>]>,
) -> Diagnostics {
    let (mut dead, mut err, mut total, mut entropy) = (0usize, 0.0, 0usize, 0.0);
    let (mut same, mut compared) = (0usize, 0usize);
    for (i, l) in layers.iter().enumerate() {
        let w1 = standardized(&l.w, l.k);
        let q = q_tau(&w1, tau);
        dead += w1.iter().filter(|x| x.abs() > q).count();
        let w2: Vec<f64> = if clamp {
            w1.iter().map(|x| x.clamp(-q, q)).collect()
        } else {
            w1.clone()
        };
        for row in w2.chunks(l.k.max(1)) {
            let a = row.iter().map(|x| x.abs()).sum::<f64>() / row.len() as f64;
            err += row
                .iter()
                .map(|&x| (x - a * if x >= 0.0 { 1.0 } else { -1.0 }).abs())
                .sum::<f64>();
        }
        total += w1.len();
        let pos = w1.iter().filter(|&&x| x >= 0.0).count() as f64 / w1.len().max(1) as f64;
        entropy += entropy_bits(pos);
        if let Some(prev) = before.and_then(|b| b.get(i)) {
            for (x, p) in w1.iter().zip(prev) {
                same += usize::from((*x >= 0.0) == *p);
                compared += 1;
            }
        }
    }
    Diagnostics {
        dead_weight_fraction: dead as f64 / total.max(1) as f64,
        quant_error: err / total.max(1) as f64,
        weight_entropy: entropy / layers.len().max(1) as f64,
        frozen_sign_fraction: before.map(|_| same as f64 / compared.max(1) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Laplace(0, b) samples by the inverse CDF.
    fn laplace(n: usize, b: f64, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u: f64 = rng.r#gen::<f64>() - 0.5;
                (-b * u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
            })
            .collect()
    }

    /// On Laplace weights the clamp at Q(tau) cuts ~2(1 - tau) of them
    /// (field notes §8.2: 30 % at 0.85, 2 % at 0.99), whatever the scale.
    #[test]
    fn clamped_share_of_laplace_weights_is_two_one_minus_tau() {
        for (tau, b) in [(0.85, 0.05), (0.9, 1.0), (0.99, 3.0)] {
            let w = laplace(200_000, b, 7);
            let w1 = standardized(&w, w.len());
            let f = clamped_fraction(&w1, tau);
            let want = 2.0 * (1.0 - tau);
            assert!((f - want).abs() < 0.01, "tau {tau}: {f} vs {want}");
            // The standardisation gives b ~ 2 (std 2 sqrt 2).
            let b1 = w1.iter().map(|x| x.abs()).sum::<f64>() / w1.len() as f64;
            assert!((b1 - 2.0).abs() < 0.05, "{b1}");
        }
    }

    /// Quantisation error, entropy and frozen signs on a hand example.
    #[test]
    fn diagnostics_by_hand() {
        // One layer, two rows of 4: standardisation is affine per row, so
        // the signs are those of w - mean.
        let l = LayerRows {
            name: "x".into(),
            rows: 2,
            k: 4,
            w: vec![1.0, 2.0, 3.0, 4.0, -1.0, -1.0, -1.0, 5.0],
        };
        let d = diagnose(std::slice::from_ref(&l), 0.99, false, None);
        // Row 1: w1 = (w - 2.5) / s, |w1| symmetric {1.5, 0.5}/s: a = 1/s,
        // error = mean(|1.5 - 1|, |0.5 - 1|)/s = 0.5/s.
        let w1 = standardized(&l.w, 4);
        let s1 = (1.5 / w1[3]).abs();
        let row2 = &w1[4..];
        let a2 = row2.iter().map(|x| x.abs()).sum::<f64>() / 4.0;
        let e2: f64 = row2.iter().map(|x| (x.abs() - a2).abs()).sum::<f64>();
        let want = (4.0 * 0.5 / s1 + e2) / 8.0;
        assert!(
            (d.quant_error - want).abs() < 1e-9,
            "{} {want}",
            d.quant_error
        );
        // Signs: row 1 --++, row 2 ---+: 3 of 8 positive.
        let p = 3.0f64 / 8.0;
        let h = -p * p.log2() - (1.0 - p) * (1.0 - p).log2();
        assert!((d.weight_entropy - h).abs() < 1e-12);
        assert_eq!(d.frozen_sign_fraction, None);
        let mut before = signs(std::slice::from_ref(&l));
        before[0][0] = !before[0][0];
        before[0][5] = !before[0][5];
        let d = diagnose(std::slice::from_ref(&l), 0.99, false, Some(&before));
        assert_eq!(d.frozen_sign_fraction, Some(6.0 / 8.0));
        // Clamping lowers the quantisation error of heavy tails.
        let w = laplace(4096, 1.0, 3);
        let l = LayerRows {
            name: "y".into(),
            rows: 16,
            k: 256,
            w,
        };
        let plain = diagnose(std::slice::from_ref(&l), 0.85, false, None);
        let clamped = diagnose(std::slice::from_ref(&l), 0.85, true, None);
        assert!(clamped.quant_error < plain.quant_error);
        assert_eq!(plain.dead_weight_fraction, clamped.dead_weight_fraction);
    }
}
