//! The second pass in mixed precision: the products `Z [W; M]^T` in f32 on
//! centred samples, every discrete decision either proven by an error bound
//! or recomputed in f64.
//!
//! # What changes against the f64 pass
//! The f64 pass spends most of its time on `2 C D` multiply-adds per sample
//! (see [`SecondPass`]); in single precision the same GEMM runs about twice
//! as fast. The products are formed on the centred sample
//! `z = h - mu_y` (computed in f64, then rounded to f32), not on `h`, so
//! that their rounding errors scale with `|z|`, the within-class spread
//! that NC1 measures, and not with the feature norm. What the class mean
//! adds back, `r_j . mu_y` for every decision row `r_j` and class `y`, is a
//! C x 2C table computed once in f64.
//!
//! # Error bound
//! For an n-term dot product of f32-rounded inputs accumulated in f32 in
//! any order (so also inside a blocked GEMM),
//! `|fl(z . r) - z . r| <= gamma_{n+3} |z| |r|`, with
//! `gamma_k = k u / (1 - k u)` and `u = 2^-24` (Higham, *Accuracy and
//! Stability of Numerical Algorithms*, §3.1: `gamma_n sum |z_i r_i|`, plus
//! the rounding of both inputs, then Cauchy-Schwarz), plus an absolute
//! term for subnormal products. The f64 parts get the same bound with
//! `u = 2^-53`. A head prediction or nearest-mean decision is taken only
//! when the winner's lower bound beats every other class's upper bound;
//! otherwise the sample is recomputed in f64 from its input values, as the
//! f64 pass does ([`SecondPass::rechecked`] counts them). So NC4 is the
//! f64 pass's NC4, and the compactness angles are computed in f64 as
//! before. NC1 sums squares of f32 projections: its relative error is of
//! the order of `sqrt(D) u` (the benchmark prints the measured difference).

use rayon::prelude::*;

use super::super::angles::Compactness;
use super::super::error::{GeometryError, Result, check_dim};
use super::super::linalg::{Matrix, dot};
use super::{SecondPass, argmax_offset, nearest_mean};
use crate::kernels::gemm::gemm_strides;

/// Which arithmetic the second pass's products use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f64 throughout.
    F64,
    /// f32 products on centred samples, decisions proven or recomputed in
    /// f64 (module documentation).
    #[default]
    Mixed,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F64 => "f64",
            Precision::Mixed => "mixed",
        })
    }
}

/// `gamma_{n+3}` for unit roundoff `u`.
fn gamma(n: usize, u: f64) -> f64 {
    let k = (n + 3) as f64 * u;
    k / (1.0 - k)
}

/// Tables and buffers of the mixed-precision pass.
pub(super) struct Mixed {
    /// The decision rows `[W; M]` (f64 in `SecondPass::rows`) rounded to
    /// f32 and transposed (D x width: the GEMM packs it contiguously).
    rows32: Vec<f32>,
    /// 1 for the head's decision rows, 2 for the centred means: the
    /// values maximised are `weight_j (z . r_j) + base[y][j]`.
    weight: Vec<f64>,
    /// C x width, row y: `r_j . mu_y + b_j` for the decision rows (the
    /// head's value), `2 m_j . mu_y - |mu_j|^2` for the centred means (minus
    /// the squared distance to `mu_j`, up to terms common to all j).
    base: Vec<f64>,
    /// Error bound of value j: `per_norm(z, y) err_scale[j] + slack[y][j]`,
    /// with `err_scale[j] = weight_j |r_j|` and `slack` the subnormal and
    /// f64 rounding terms.
    err_scale: Vec<f64>,
    slack: Vec<f64>,
    /// `|mu_y|`.
    mean_norms: Vec<f64>,
    /// `v_k[c] / lambda_k`, C x r, in f32.
    proj32: Option<Vec<f32>>,
    /// `gamma_{D+3}` in f32 and in f64.
    gamma32: f64,
    gamma64: f64,
    /// Samples whose decisions the bound could not settle.
    rechecked: u64,
    /// Block buffers, one slot per rayon thread, made on first use.
    scratch: Vec<std::sync::Mutex<Option<Scratch>>>,
}

impl Mixed {
    /// Tables for `pass` (built in f64 by `SecondPass::new`).
    pub(super) fn new(pass: &SecondPass<'_>) -> Self {
        let means = pass.compactness.means();
        let (c, d) = (means.rows(), means.cols());
        let width = pass.rows.rows();
        let cross_at = width - c;
        let (gamma32, gamma64) = (
            gamma(d, f32::EPSILON as f64 / 2.0),
            gamma(d, f64::EPSILON / 2.0),
        );
        let eta32 = (d + 3) as f64 * f32::from_bits(1) as f64;
        // val_j = weight_j (z . r_j) + base[y][j], maximised over each part.
        let weight: Vec<f64> = (0..width)
            .map(|j| if j < cross_at { 1.0 } else { 2.0 })
            .collect();
        let row_norms = pass.rows.row_norms();
        let mut base = vec![0.0; c * width];
        let mut slack = vec![0.0; c * width];
        for y in 0..c {
            let mu = means.row(y);
            for j in 0..width {
                let r_mu = dot(pass.rows.row(j), mu);
                let (value, extra) = if j < cross_at {
                    let b = pass.offsets.as_ref().map_or(0.0, |b| b[j]);
                    (r_mu + b, b.abs())
                } else {
                    let m2 = pass.mean_sq[j - cross_at];
                    (2.0 * r_mu - m2, m2)
                };
                base[y * width + j] = value;
                slack[y * width + j] = weight[j] * eta32 + gamma64 * (value.abs() + extra);
            }
        }
        Self {
            rows32: (0..d * width)
                .map(|i| pass.rows.get(i % width, i / width) as f32)
                .collect(),
            err_scale: row_norms.iter().zip(&weight).map(|(n, w)| n * w).collect(),
            weight,
            base,
            slack,
            mean_norms: means.row_norms(),
            proj32: pass
                .proj
                .as_ref()
                .map(|p| p.iter().map(|&v| v as f32).collect()),
            gamma32,
            gamma64,
            rechecked: 0,
            scratch: (0..rayon::current_num_threads().max(1))
                .map(|_| std::sync::Mutex::new(None))
                .collect(),
        }
    }

    pub(super) fn rechecked(&self) -> u64 {
        self.rechecked
    }
}

/// Index of the largest `val[j]` (the first on ties) when its lower bound
/// `val - err` exceeds every other upper bound `val + err`; `None` when the
/// values cannot decide (or one is not finite).
fn decide(val: &[f64], err: &[f64]) -> Option<usize> {
    let (mut best, mut top, mut finite) = (0, f64::NEG_INFINITY, true);
    for (j, &v) in val.iter().enumerate() {
        finite &= v.is_finite();
        if v > top {
            (best, top) = (j, v);
        }
    }
    let upper = |range: std::ops::Range<usize>| {
        val[range.clone()]
            .iter()
            .zip(&err[range])
            .fold(
                f64::NEG_INFINITY,
                |m, (v, e)| if v + e > m { v + e } else { m },
            )
    };
    let rival = upper(0..best).max(upper(best + 1..val.len()));
    (finite && rival < top - err[best]).then_some(best)
}

/// `z = h - mu` into `z` (f32) and `|z|` (f64 sums in 8 lanes).
fn center(h: &[f64], mu: &[f64], z: &mut [f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let split = h.len() / 8 * 8;
    for ((hb, mb), zb) in h[..split]
        .chunks_exact(8)
        .zip(mu[..split].chunks_exact(8))
        .zip(z[..split].chunks_exact_mut(8))
    {
        for l in 0..8 {
            let t = hb[l] - mb[l];
            lanes[l] += t * t;
            zb[l] = t as f32;
        }
    }
    let mut s: f64 = lanes.iter().sum();
    for ((&hv, &m), zv) in h[split..].iter().zip(&mu[split..]).zip(&mut z[split..]) {
        let t = hv - m;
        s += t * t;
        *zv = t as f32;
    }
    s.sqrt()
}

/// Rows per block of the fused pipeline: a block's centred samples
/// (`BLOCK x D` f32) and products stay in a core's L2 cache between the
/// three steps.
const BLOCK: usize = 256;

/// Per-thread buffers of one block.
struct Scratch {
    h: Vec<f64>,
    val: Vec<f64>,
    err: Vec<f64>,
    z: Vec<f32>,
    z_norms: Vec<f64>,
    dots: Vec<f32>,
    projections: Vec<f32>,
}

impl Scratch {
    fn new(d: usize, width: usize, rank: usize) -> Self {
        Self {
            h: vec![0.0; d],
            val: vec![0.0; width],
            err: vec![0.0; width],
            z: vec![0.0; BLOCK * d],
            z_norms: vec![0.0; BLOCK],
            dots: vec![0.0; BLOCK * width],
            projections: vec![0.0; BLOCK * rank],
        }
    }
}

/// What one sample gives: head prediction, nearest class mean, NC1 term,
/// whether the decisions were recomputed in f64.
type Outcome = (usize, usize, f64, bool);

impl SecondPass<'_> {
    /// The mixed-precision [`push_batch`](Self::push_batch) (module
    /// documentation); the f64 one when the pass was built with
    /// [`Precision::F64`] or its head has no linear decision rule.
    pub fn push_mixed<T: Copy + Into<f64> + Send + Sync>(
        &mut self,
        xs: &[T],
        labels: &[usize],
    ) -> Result<()> {
        let Some(mx) = self.mixed.as_ref() else {
            return self.push_batch(xs, labels);
        };
        let (c, d) = (self.mean_sq.len(), self.rows.cols());
        let k = labels.len();
        check_dim("features length (N * D)", k * d, xs.len())?;
        if let Some(&label) = labels.iter().find(|&&l| l >= c) {
            return Err(GeometryError::LabelOutOfRange { label, classes: c });
        }
        let mut angles = vec![0.0; k];
        let mut outcomes: Vec<Outcome> = vec![(0, 0, 0.0, false); k];
        let (width, r) = (self.rows.rows(), self.rank);
        let view = View {
            rows: &self.rows,
            offsets: self.offsets.as_deref(),
            mean_sq: &self.mean_sq,
            rank: self.rank,
            compactness: &self.compactness,
        };
        angles
            .par_chunks_mut(BLOCK)
            .zip(outcomes.par_chunks_mut(BLOCK))
            .zip(xs.par_chunks(BLOCK * d).zip(labels.par_chunks(BLOCK)))
            .for_each(|((angles, outcomes), (xs, labels))| {
                // One set of buffers per pool thread (uncontended locks).
                let slot = rayon::current_thread_index().unwrap_or(0) % mx.scratch.len();
                let mut guard = mx.scratch[slot]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let scratch = guard.get_or_insert_with(|| Scratch::new(d, width, r));
                view.push_block(mx, scratch, xs, labels, angles, outcomes);
            });
        self.compactness.push_angles(xs, labels, &angles)?;
        let mut rechecked = 0;
        for &(pred, ncc, nc1, again) in &outcomes {
            self.nc4.push_predictions(pred, ncc);
            self.nc1_sum += nc1;
            rechecked += u64::from(again);
        }
        if let Some(mx) = self.mixed.as_mut() {
            mx.rechecked += rechecked;
        }
        self.count += k as u64;
        Ok(())
    }
}

/// What a block needs of the [`SecondPass`] (without its head, which need
/// not be `Sync`).
struct View<'a> {
    rows: &'a Matrix,
    offsets: Option<&'a [f64]>,
    mean_sq: &'a [f64],
    rank: usize,
    compactness: &'a Compactness,
}

impl View<'_> {
    /// One block of at most [`BLOCK`] samples, on one thread: (1) in f64
    /// the compactness angle, `z = h - mu_y` and `|z|`; (2) the f32
    /// products `Z [W; M]^T` and the NC1 projections; (3) the decisions
    /// within their bounds, else in f64.
    fn push_block<T: Copy + Into<f64>>(
        &self,
        mx: &Mixed,
        scratch: &mut Scratch,
        xs: &[T],
        labels: &[usize],
        angles: &mut [f64],
        outcomes: &mut [Outcome],
    ) {
        let (c, d, r) = (self.mean_sq.len(), self.rows.cols(), self.rank);
        let (k, width) = (labels.len(), self.rows.rows());
        let cross_at = width - c;
        let Scratch {
            h,
            val,
            err,
            z,
            z_norms,
            dots,
            projections,
        } = scratch;
        let means = self.compactness.means();
        for (i, &y) in labels.iter().enumerate() {
            let x = &xs[i * d..(i + 1) * d];
            h.iter_mut().zip(x).for_each(|(hv, &xv)| *hv = xv.into());
            angles[i] = self.compactness.angle_deg(h, y);
            z_norms[i] = center(h, means.row(y), &mut z[i * d..(i + 1) * d]);
        }
        let dots = &mut dots[..k * width];
        gemm_strides(
            dots,
            (width, 1),
            false,
            [k, width, d],
            (z, (d, 1)),
            (&mx.rows32, (width, 1)),
            false,
        );
        if let Some(p) = &mx.proj32 {
            gemm_strides(
                &mut projections[..k * r],
                (r, 1),
                false,
                [k, r, c],
                (&dots[cross_at..], (width, 1)),
                (p, (r, 1)),
                false,
            );
        }
        for (i, &y) in labels.iter().enumerate() {
            let dots = &dots[i * width..(i + 1) * width];
            let base = &mx.base[y * width..(y + 1) * width];
            let slack = &mx.slack[y * width..(y + 1) * width];
            // Bound on |fl(z . r_j) - z . r_j| per unit |r_j|, with the f64
            // rounding of z and of the table.
            let (zn, mn) = (z_norms[i], mx.mean_norms[y]);
            let per_norm = mx.gamma32 * zn + mx.gamma64 * (zn + mn);
            for j in 0..width {
                val[j] = mx.weight[j] * dots[j] as f64 + base[j];
                err[j] = per_norm * mx.err_scale[j] + slack[j];
            }
            let pred = decide(&val[..cross_at], &err[..cross_at]);
            let ncc = decide(&val[cross_at..], &err[cross_at..]);
            let nc1 = if mx.proj32.is_some() {
                projections[i * r..(i + 1) * r]
                    .iter()
                    .map(|&v| (v as f64) * (v as f64))
                    .sum::<f64>()
            } else {
                0.0
            };
            outcomes[i] = match (pred, ncc) {
                (Some(p), Some(n)) => (p, n, nc1, false),
                _ => {
                    let (p, n) = decide_f64(
                        self.rows,
                        self.offsets,
                        self.mean_sq,
                        &xs[i * d..(i + 1) * d],
                    );
                    (p, n, nc1, true)
                }
            };
        }
    }
}

/// Head prediction and nearest class mean of one sample in f64, as
/// [`SecondPass::push_rows`] computes them from its decision rows
/// `[W; M]`, offsets and `|mu_c|^2`.
fn decide_f64<T: Copy + Into<f64>>(
    rows: &Matrix,
    offsets: Option<&[f64]>,
    mean_sq: &[f64],
    x: &[T],
) -> (usize, usize) {
    let h: Vec<f64> = x.iter().map(|&v| v.into()).collect();
    let cross_at = rows.rows() - mean_sq.len();
    let values: Vec<f64> = rows.iter_rows().map(|r| dot(r, &h)).collect();
    let pred = argmax_offset(&values[..cross_at], offsets);
    let ncc = nearest_mean(mean_sq, &values[cross_at..]);
    (pred, ncc)
}

#[cfg(test)]
mod tests {
    use super::super::{build_head, second_pass};
    use super::*;
    use crate::geometry::stats::ClassStats;
    use crate::geometry::test_rng::lcg;

    /// Classes around `offset + centre_c`, samples with spread `noise`.
    fn data(c: usize, d: usize, n: usize, noise: f64, seed: u64) -> (Vec<f32>, Vec<usize>, Matrix) {
        let mut s = seed;
        let offset: Vec<f64> = (0..d).map(|_| 20.0 * lcg(&mut s)).collect();
        let centres: Vec<Vec<f64>> = (0..c)
            .map(|_| offset.iter().map(|o| o + 3.0 * lcg(&mut s)).collect())
            .collect();
        let labels: Vec<usize> = (0..n).map(|i| (i * 31 + i / 7) % c).collect();
        let x = labels
            .iter()
            .flat_map(|&y| {
                centres[y]
                    .iter()
                    .map(|v| (v + noise * lcg(&mut s)) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let w = Matrix::from_fn(c, d, |i, j| centres[i][j] - offset[j] + 2.0 * lcg(&mut s));
        (x, labels, w)
    }

    /// NC4 rate, NC1, per-class compactness (count, mean, max), rechecked.
    type Summary = (f64, f64, Vec<(u64, f64, f64)>, u64);

    /// [`Summary`] of the f64 and the mixed-precision passes.
    fn both(
        x: &[f32],
        labels: &[usize],
        w: &Matrix,
        bias: Option<&[f64]>,
        scale: Option<f64>,
    ) -> [Summary; 2] {
        let (c, d) = (w.rows(), w.cols());
        let mut stats = ClassStats::means_only(c, d);
        stats.push_batch(x, labels).unwrap();
        let head = build_head(w, bias, scale).unwrap();
        let exact = second_pass(&stats, head.as_ref(), x, labels).unwrap();
        let mut mixed =
            SecondPass::with_precision(&stats, head.as_ref(), Precision::Mixed).unwrap();
        assert_eq!(mixed.precision(), Precision::Mixed);
        // Uneven batches, to cross block boundaries.
        let cut = 3 * BLOCK / 2 + 7;
        mixed.push_mixed(&x[..cut * d], &labels[..cut]).unwrap();
        mixed.push_mixed(&x[cut * d..], &labels[cut..]).unwrap();
        [&exact, &mixed].map(|p| {
            let comp = p.compactness().per_class();
            (
                p.nc4().rate(),
                p.nc1().unwrap(),
                comp.iter()
                    .map(|k| (k.count, k.mean_deg, k.max_deg))
                    .collect(),
                p.rechecked(),
            )
        })
    }

    #[test]
    fn mixed_precision_agrees_with_f64() {
        for (c, d, noise, scale) in [
            (7, 64, 1.5, None),
            (12, 33, 4.0, Some(16.0)),
            (3, 300, 6.0, None),
        ] {
            let (x, labels, w) = data(c, d, 1500, noise, 11 + c as u64);
            let bias: Vec<f64> = (0..c).map(|j| 0.1 * j as f64).collect();
            let bias = scale.is_none().then_some(bias.as_slice());
            let [exact, mixed] = both(&x, &labels, &w, bias, scale);
            assert!(
                exact.0 > 0.0,
                "C={c}: the data should have some NC4 mismatches"
            );
            assert_eq!(mixed.0, exact.0, "C={c}: NC4");
            let rel = (mixed.1 - exact.1).abs() / exact.1;
            assert!(
                rel < 1e-5,
                "C={c}: NC1 {} vs {} (rel {rel:e})",
                mixed.1,
                exact.1
            );
            // Compactness is computed in f64 in both passes: identical.
            assert_eq!(mixed.2, exact.2, "C={c}: compactness");
            // The f32 products decide nearly every sample by themselves.
            assert!(mixed.3 < 15, "C={c}: {} of 1500 samples rechecked", mixed.3);
            assert_eq!(exact.3, 0);
        }
    }

    /// Near-ties: classes 0 and 1 mirror each other in coordinate 0
    /// (samples and weights), classes 2 and 3 have 0 there. A sample with
    /// `h_0 = +-1e-9` is then nearer `mu_0` or `mu_1` and prefers `w_0` or
    /// `w_1` by amounts that f64 resolves and the f32 products (of values
    /// about 240) do not: the bound must send them to f64, which gives the
    /// f64 pass's answers. (Classes 2 and 3, with `h_0 = 0`, tie exactly
    /// on the head: `w_0 . h = w_1 . h`.)
    #[test]
    fn ties_are_recomputed_in_f64() {
        let (d, mut s) = (24, 7u64);
        let (mut x, mut labels) = (Vec::<f32>::new(), Vec::new());
        let centre: Vec<f64> = (0..d).map(|_| 5.0 * lcg(&mut s)).collect();
        let mut push = |row: Vec<f32>, y: usize| {
            x.extend_from_slice(&row);
            labels.push(y);
        };
        for i in 0..400 {
            let mut row: Vec<f32> = centre.iter().map(|v| (v + lcg(&mut s)) as f32).collect();
            match i % 3 {
                0 => {
                    // A mirrored pair, one in class 0 and one in class 1.
                    row[0] = 2.0 + row[0].abs();
                    let mut mirror = row.clone();
                    mirror[0] = -row[0];
                    push(row, 0);
                    push(mirror, 1);
                }
                1 => {
                    // A near-tie, in both classes: h_0 = +-1e-9 puts it
                    // on one side, which f64 resolves and f32 cannot.
                    row[0] = if i % 2 == 0 { 1e-9 } else { -1e-9 };
                    push(row.clone(), 0);
                    push(row, 1);
                }
                _ => {
                    row[0] = 0.0;
                    row[1 + i % 5] += 4.0;
                    push(row, 2 + i % 2);
                }
            }
        }
        let w = Matrix::from_fn(4, d, |c, j| match (c, j) {
            (0, 0) => 1.0,
            (1, 0) => -1.0,
            (_, 0) => 0.0,
            (0 | 1, _) => centre[j],
            _ => centre[j] + if j == 1 + c { 1.0 } else { 0.0 },
        });
        let near_ties = 2 * 133;
        let [exact, mixed] = both(&x, &labels, &w, None, None);
        assert_eq!(mixed.0, exact.0, "NC4");
        assert_eq!(mixed.2, exact.2, "compactness");
        assert!(
            mixed.3 >= near_ties,
            "{} samples rechecked, expected at least the {near_ties} near-ties",
            mixed.3
        );
    }

    #[test]
    fn decide_needs_a_margin_beyond_both_bounds() {
        assert_eq!(decide(&[1.0, 3.0, 2.0], &[0.1, 0.1, 0.1]), Some(1));
        // 3 - 0.5 <= 2 + 0.6: undecided.
        assert_eq!(decide(&[1.0, 3.0, 2.0], &[0.1, 0.5, 0.6]), None);
        // Exact ties are never decided by the bound.
        assert_eq!(decide(&[2.0, 2.0], &[0.0, 0.0]), None);
        assert_eq!(decide(&[2.0, f64::NAN], &[0.0, 0.0]), None);
        assert_eq!(decide(&[f64::INFINITY, 0.0], &[0.0, 0.0]), None);
        assert_eq!(decide(&[5.0], &[1.0]), Some(0));
    }

    #[test]
    fn the_bound_covers_the_f32_error() {
        // Worst case of the bound's own kind: many terms of one sign.
        for d in [1, 7, 512, 4096] {
            let mut s = d as u64;
            let z: Vec<f64> = (0..d).map(|_| 1.0 + 0.5 * lcg(&mut s)).collect();
            let r: Vec<f64> = (0..d).map(|_| 1.0 + 0.5 * lcg(&mut s)).collect();
            let exact = dot(&z, &r);
            let f32_dot = z
                .iter()
                .zip(&r)
                .fold(0.0f32, |acc, (a, b)| acc + (*a as f32) * (*b as f32));
            let bound =
                gamma(d, f32::EPSILON as f64 / 2.0) * dot(&z, &z).sqrt() * dot(&r, &r).sqrt();
            assert!((f32_dot as f64 - exact).abs() <= bound, "D={d}");
        }
    }
}
