//! Level sets of post-training weight discretisation (field notes §8.3,
//! Malsagov et al. 2019): sign-magnitude codes over `n` bits, the sign bit
//! counted, so `K = 2^(n-1)` magnitude levels per group of weights (a
//! tensor, or one output channel):
//!
//! - `linear`: `M (k+1)/K`, `k = 0..K-1` (equally spaced up to `M`);
//! - `exponential`: `M q^k`, `k = 0..K-1`, `0 < q < 1` (a geometric
//!   progression down from `M`);
//! - with a zero level, one magnitude code is 0 and the others are the
//!   scheme's `K - 1` levels: linear `M k/(K-1)`, exponential `{0} U M q^k`
//!   (`k = 0..K-2`); it needs `n >= 2`.
//!
//! `M = max |w|` of the group; every weight maps to its nearest level, its
//! sign kept; 1 bit is `sign(w) M` for both schemes. The base `q` is chosen
//! per group by a 1-D search: a grid of [`Q_GRID`] values on
//! `[Q_MIN, Q_MAX]`, then a golden-section refinement around the best one,
//! minimising the squared error `sum (w - Q(w))^2` or maximising the
//! correlation `sum w Q(w) / (|w| |Q(w)|)` (the follow-up paper's
//! criterion). Pure f64.

use serde::{Deserialize, Serialize};

/// Grid points of the search for `q`.
pub const Q_GRID: usize = 64;
/// Smallest `q` searched.
pub const Q_MIN: f64 = 0.05;
/// Largest `q` searched.
pub const Q_MAX: f64 = 0.995;

/// How the magnitude levels are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Uniform levels.
    Linear,
    /// Levels `M q^k`.
    Exponential,
}

impl Scheme {
    /// Every scheme, in report order.
    pub const ALL: [Scheme; 2] = [Scheme::Linear, Scheme::Exponential];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Exponential => "exponential",
        }
    }

    /// Parse a CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What `q` is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    /// Least squared error.
    Mse,
    /// Largest correlation between `w` and `Q(w)`.
    Correlation,
}

impl Criterion {
    /// Parse a CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mse" => Some(Self::Mse),
            "correlation" => Some(Self::Correlation),
            _ => None,
        }
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mse => "mse",
            Self::Correlation => "correlation",
        }
    }
}

/// A level set: the scheme, the bits, and whether one code is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Levels {
    /// Spacing.
    pub scheme: Scheme,
    /// Bits per weight, the sign bit included (1..=8).
    pub bits: u32,
    /// One magnitude code is 0.
    pub zero: bool,
}

/// The levels of one group: its scale `M` and base `q` (1 for linear).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupLevels {
    /// `M`, the largest magnitude.
    pub scale: f64,
    /// `q` (exponential), 1 otherwise.
    pub q: f64,
}

impl Levels {
    /// Magnitude codes `K = 2^(bits - 1)`.
    pub fn magnitudes(&self) -> usize {
        1 << (self.bits.saturating_sub(1))
    }

    /// Check the bits and the zero level; the error says what is expected.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=8).contains(&self.bits) {
            return Err(format!("bits = {}: expected 1..=8", self.bits));
        }
        if self.zero && self.bits < 2 {
            return Err("a zero level needs at least 2 bits (1 bit is sign x M)".into());
        }
        Ok(())
    }

    /// The magnitude of code `k` (0 = the largest, `M`), ascending codes
    /// going down; with a zero level the last code is 0.
    pub fn level(&self, g: GroupLevels, k: usize) -> f64 {
        let kk = self.magnitudes();
        let nonzero = if self.zero { kk - 1 } else { kk };
        if k >= nonzero {
            return 0.0;
        }
        match self.scheme {
            // Largest first: M, M (K-1)/K, ... (no zero) or M, ..., M/(K-1).
            Scheme::Linear => g.scale * (nonzero - k) as f64 / nonzero as f64,
            Scheme::Exponential => g.scale * g.q.powi(k as i32),
        }
    }

    /// Every magnitude, by code.
    pub fn table(&self, g: GroupLevels) -> Vec<f64> {
        (0..self.magnitudes()).map(|k| self.level(g, k)).collect()
    }

    /// The code of `|w|`: the nearest magnitude in `table` (descending, as
    /// [`Levels::table`] gives it; ties to the larger magnitude), by
    /// bisection.
    pub fn code(table: &[f64], w: f64) -> usize {
        let a = w.abs();
        // First index whose magnitude is <= a.
        let i = table.partition_point(|&m| m > a);
        match i {
            0 => 0,
            _ if i == table.len() => i - 1,
            _ => {
                if a - table[i] < table[i - 1] - a {
                    i
                } else {
                    i - 1
                }
            }
        }
    }

    /// `Q(w)`: sign times the nearest magnitude.
    pub fn value(table: &[f64], w: f64) -> f64 {
        let m = table[Self::code(table, w)];
        if w < 0.0 { -m } else { m }
    }

    /// The criterion of `group` under `g` (lower is better: the squared
    /// error, or minus the correlation).
    fn cost(&self, group: &[f64], g: GroupLevels, criterion: Criterion) -> f64 {
        let table = self.table(g);
        let (mut se, mut wq, mut qq, mut ww) = (0.0, 0.0, 0.0, 0.0);
        for &w in group {
            let q = Self::value(&table, w);
            se += (w - q) * (w - q);
            wq += w * q;
            qq += q * q;
            ww += w * w;
        }
        match criterion {
            Criterion::Mse => se,
            Criterion::Correlation => {
                let d = (ww * qq).sqrt();
                if d > 0.0 { -wq / d } else { 0.0 }
            }
        }
    }

    /// Whether `q` is a parameter of this level set (exponential, with at
    /// least two non-zero magnitudes): searched, stored, and counted.
    pub fn has_q(&self) -> bool {
        self.scheme == Scheme::Exponential && self.magnitudes() - usize::from(self.zero) >= 2
    }

    /// The levels of `group`: `M = max |w|`, and for the exponential scheme
    /// the `q` of the search (see the module docs). An all-zero group gets
    /// `M = 0` (every code the largest level, 0).
    pub fn fit(&self, group: &[f64], criterion: Criterion) -> GroupLevels {
        let scale = group.iter().fold(0.0f64, |m, w| m.max(w.abs()));
        let mut g = GroupLevels { scale, q: 1.0 };
        let searched = self.has_q() && scale > 0.0;
        if !searched {
            return g;
        }
        let cost = |q: f64| self.cost(group, GroupLevels { scale, q }, criterion);
        let step = (Q_MAX - Q_MIN) / (Q_GRID - 1) as f64;
        let grid: Vec<f64> = (0..Q_GRID).map(|i| Q_MIN + step * i as f64).collect();
        let (mut best, mut best_cost) = (grid[0], f64::INFINITY);
        for &q in &grid {
            let c = cost(q);
            if c < best_cost {
                (best, best_cost) = (q, c);
            }
        }
        // Golden section on the bracket around the best grid point.
        let (mut lo, mut hi) = ((best - step).max(Q_MIN), (best + step).min(Q_MAX));
        let phi = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..30 {
            let (a, b) = (hi - phi * (hi - lo), lo + phi * (hi - lo));
            if cost(a) <= cost(b) {
                hi = b;
            } else {
                lo = a;
            }
        }
        let refined = (lo + hi) / 2.0;
        if cost(refined) < best_cost {
            best = refined;
        }
        g.q = best;
        g
    }
}

/// Sign-magnitude code of one weight: bit 0 the sign (1: negative), the
/// rest the magnitude code (a zero magnitude is always positive).
pub fn pack(sign_negative: bool, magnitude: usize, is_zero: bool) -> u8 {
    ((magnitude as u8) << 1) | u8::from(sign_negative && !is_zero)
}

/// The value of a packed code under `table`.
pub fn unpack(table: &[f64], code: u8) -> f64 {
    let m = table[(code >> 1) as usize];
    if code & 1 == 1 { -m } else { m }
}

/// Quantise `group` under `levels`: its levels (`M` and `q` rounded to
/// float32, the format they are stored in, before the codes are chosen) and
/// its packed codes.
pub fn quantize_group(
    group: &[f64],
    levels: &Levels,
    criterion: Criterion,
) -> (GroupLevels, Vec<u8>) {
    let fitted = levels.fit(group, criterion);
    let g = GroupLevels {
        scale: fitted.scale as f32 as f64,
        q: fitted.q as f32 as f64,
    };
    let table = levels.table(g);
    let codes = group
        .iter()
        .map(|&w| {
            let k = Levels::code(&table, w);
            pack(w < 0.0, k, table[k] == 0.0)
        })
        .collect();
    (g, codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(scheme: Scheme, bits: u32, zero: bool) -> Levels {
        Levels { scheme, bits, zero }
    }

    #[test]
    fn linear_levels_are_equally_spaced_and_exponential_ones_geometric() {
        let g = GroupLevels { scale: 2.0, q: 0.5 };
        assert_eq!(
            lv(Scheme::Linear, 3, false).table(g),
            vec![2.0, 1.5, 1.0, 0.5]
        );
        assert_eq!(
            lv(Scheme::Linear, 3, true).table(g),
            vec![2.0, 4.0 / 3.0, 2.0 / 3.0, 0.0]
        );
        assert_eq!(
            lv(Scheme::Exponential, 3, false).table(g),
            vec![2.0, 1.0, 0.5, 0.25]
        );
        assert_eq!(
            lv(Scheme::Exponential, 3, true).table(g),
            vec![2.0, 1.0, 0.5, 0.0]
        );
        // 1 bit: sign x M for both.
        for s in Scheme::ALL {
            assert_eq!(lv(s, 1, false).table(g), vec![2.0]);
        }
        assert!(lv(Scheme::Linear, 1, true).check().is_err());
        assert!(lv(Scheme::Linear, 9, false).check().is_err());
        assert!(lv(Scheme::Linear, 0, false).check().is_err());
    }

    /// Every weight goes to its nearest level, the sign kept, and codes
    /// unpack to those values.
    #[test]
    fn every_weight_maps_to_its_nearest_level_with_its_sign() {
        let w: Vec<f64> = (0..200)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 17.0)
            .collect();
        for s in Scheme::ALL {
            for bits in 1..=5 {
                for zero in [false, true] {
                    let l = lv(s, bits, zero);
                    if l.check().is_err() {
                        continue;
                    }
                    let (g, codes) = quantize_group(&w, &l, Criterion::Mse);
                    let table = l.table(g);
                    for (&x, &c) in w.iter().zip(&codes) {
                        let q = unpack(&table, c);
                        let best = table
                            .iter()
                            .map(|m| (x.abs() - m).abs())
                            .fold(f64::INFINITY, f64::min);
                        assert!(
                            ((x.abs() - q.abs()).abs() - best).abs() < 1e-12,
                            "{s:?} {bits} {zero}: {x} -> {q}"
                        );
                        assert!(q == 0.0 || q.signum() == x.signum(), "sign of {x}");
                    }
                    // M = max |w|, stored as float32.
                    let m = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    assert_eq!(g.scale, m as f32 as f64);
                }
            }
        }
    }

    /// Weights planted on the levels of q = 0.6 are found again (the
    /// squared error is then 0) by both criteria.
    #[test]
    fn the_search_finds_a_planted_base() {
        let l = lv(Scheme::Exponential, 3, false);
        let truth = GroupLevels { scale: 1.5, q: 0.6 };
        let table = l.table(truth);
        let w: Vec<f64> = (0..64)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 } * table[i % 4])
            .collect();
        for c in [Criterion::Mse, Criterion::Correlation] {
            let g = l.fit(&w, c);
            assert!((g.q - 0.6).abs() < 1e-3, "{c:?}: q {}", g.q);
            let (_, codes) = quantize_group(&w, &l, c);
            let err: f64 = w
                .iter()
                .zip(&codes)
                .map(|(x, &k)| (x - unpack(&l.table(g), k)).powi(2))
                .sum();
            assert!(err < 1e-4, "{c:?}: {err}");
        }
    }

    #[test]
    fn an_all_zero_group_stays_zero() {
        let l = lv(Scheme::Exponential, 4, false);
        let (g, codes) = quantize_group(&[0.0; 5], &l, Criterion::Mse);
        assert_eq!(g.scale, 0.0);
        assert!(codes.iter().all(|&c| unpack(&l.table(g), c) == 0.0));
    }
}
