//! Streaming per-class statistics in one pass: counts, class means `mu_c`,
//! global mean `mu_G`, within-class covariance `Sigma_W` and between-class
//! covariance `Sigma_B` (field notes §4; Papyan, Han, Donoho, PNAS 2020).
//!
//! Memory is O(C D + D^2), independent of the number of samples N.
//!
//! # Numerics
//! Accumulators are f64. Every class c keeps a shift `s_c` (its first
//! sample), and the pass accumulates `a_c = sum_{i in c} (h_i - s_c)` and one
//! pooled scatter `S = sum_i (h_i - s_{y_i})(h_i - s_{y_i})^T`. Then
//! `N Sigma_W = S - sum_c a_c a_c^T / n_c`, so the subtraction only cancels
//! within-class offsets (small near collapse), never the distance of a class
//! from the origin. Merging re-shifts the other side's sums exactly
//! (`sum (h - s)(h - s)^T = S' + a' e^T + e a'^T + n' e e^T`, `e = s' - s`).
//!
//! # Speed
//! The scatter is a rank-N update of a symmetric D x D matrix, the dominant
//! cost (N D^2 / 2 multiply-adds). [`ClassStats::push_batch`] packs blocks of
//! rows into column panels and runs a register-blocked outer-product kernel
//! on the upper triangle only, dispatched at run time to AVX-512 or AVX2+FMA
//! when the CPU has them. [`ClassStats::push_batch_parallel`] splits rows over
//! threads and merges. `scatter_reference` in the tests is the plain
//! reference the kernel is checked against.

use super::error::{GeometryError, Result, check_dim};
use super::linalg::Matrix;
use crate::kernels::scatter::Kernel;

/// Rows packed per block before the scatter kernel runs.
const BLOCK_ROWS: usize = 512;

/// One-pass per-class statistics of features `h_i` (rows of an N x D matrix)
/// with labels `y_i < C`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassStats {
    classes: usize,
    dim: usize,
    counts: Vec<u64>,
    /// Whether `shifts` row c is set (first sample of class c seen).
    has_shift: Vec<bool>,
    /// C x D per-class shifts `s_c`.
    shifts: Vec<f64>,
    /// C x D shifted sums `a_c = sum (h_i - s_c)`.
    sums: Vec<f64>,
    /// Per class `sum |h_i|` (for the mean feature norm).
    norm_sums: Vec<f64>,
    /// D x D pooled scatter, upper triangle (`j <= k`) valid, row-major;
    /// empty when the statistics were built with [`ClassStats::means_only`].
    scatter: Vec<f64>,
    /// Whether `scatter` is accumulated.
    with_scatter: bool,
}

impl ClassStats {
    /// Empty statistics for `classes` classes of `dim`-dimensional features.
    pub fn new(classes: usize, dim: usize) -> Self {
        Self::empty(classes, dim, true)
    }

    /// Like [`new`](Self::new) but without the D x D scatter: counts, means
    /// and norms only, O(C D) memory and O(D) work per sample. For callers
    /// that get `Sigma_W` another way, such as the projected NC1 of
    /// [`SecondPass`](super::SecondPass); [`within_class_cov`](Self::within_class_cov)
    /// is then an error.
    pub fn means_only(classes: usize, dim: usize) -> Self {
        Self::empty(classes, dim, false)
    }

    fn empty(classes: usize, dim: usize, with_scatter: bool) -> Self {
        Self {
            classes,
            dim,
            counts: vec![0; classes],
            has_shift: vec![false; classes],
            shifts: vec![0.0; classes * dim],
            sums: vec![0.0; classes * dim],
            norm_sums: vec![0.0; classes],
            scatter: if with_scatter {
                vec![0.0; dim * dim]
            } else {
                Vec::new()
            },
            with_scatter,
        }
    }

    /// Whether the within-class scatter is accumulated (see
    /// [`means_only`](Self::means_only)).
    pub fn has_scatter(&self) -> bool {
        self.with_scatter
    }

    /// Number of classes C.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Feature dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Samples seen per class `n_c`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Total samples N.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds one sample `x` (length D) of class `label`.
    pub fn push<T: Copy + Into<f64>>(&mut self, x: &[T], label: usize) -> Result<()> {
        self.push_batch(x, &[label])
    }

    /// Adds a batch: `features` row-major N x D (f32 or f64), `labels` of
    /// length N. Validates everything first, so on error nothing changes.
    pub fn push_batch<T: Copy + Into<f64>>(
        &mut self,
        features: &[T],
        labels: &[usize],
    ) -> Result<()> {
        self.validate(features, labels)?;
        self.assign_shifts(features, labels);
        let kernel = Kernel::detect();
        let mut buf = Vec::new();
        for (rows, labs) in features
            .chunks(BLOCK_ROWS * self.dim.max(1))
            .zip(labels.chunks(BLOCK_ROWS))
        {
            self.push_block(rows, labs, kernel, &mut buf);
        }
        Ok(())
    }

    /// Like [`push_batch`](Self::push_batch) but splits the rows over
    /// `threads` scoped threads (each with its own D x D scatter) and merges
    /// the parts; equal to one pass up to rounding.
    pub fn push_batch_parallel<T: Copy + Into<f64> + Sync>(
        &mut self,
        features: &[T],
        labels: &[usize],
        threads: usize,
    ) -> Result<()> {
        self.validate(features, labels)?;
        let threads = threads.max(1).min(labels.len().div_ceil(BLOCK_ROWS)).max(1);
        if threads == 1 {
            return self.push_batch(features, labels);
        }
        self.assign_shifts(features, labels);
        let rows_per = labels.len().div_ceil(threads);
        let template = self.empty_like();
        let kernel = Kernel::detect();
        let parts: Vec<ClassStats> = std::thread::scope(|scope| {
            let handles: Vec<_> = features
                .chunks(rows_per * self.dim.max(1))
                .zip(labels.chunks(rows_per))
                .map(|(f, l)| {
                    let mut part = template.clone();
                    scope.spawn(move || {
                        let mut buf = Vec::new();
                        for (rows, labs) in f
                            .chunks(BLOCK_ROWS * part.dim.max(1))
                            .zip(l.chunks(BLOCK_ROWS))
                        {
                            part.push_block(rows, labs, kernel, &mut buf);
                        }
                        part
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("statistics thread panicked"))
                .collect()
        });
        for part in &parts {
            self.merge(part)?;
        }
        Ok(())
    }

    /// Adds the statistics of `other` (same C and D): the result equals one
    /// pass over both sample sets (up to rounding), whatever their shifts.
    // Triangle loops (k from j) read clearer with indices.
    #[allow(clippy::needless_range_loop)]
    pub fn merge(&mut self, other: &ClassStats) -> Result<()> {
        check_dim("merge classes", self.classes, other.classes)?;
        check_dim("merge dimension", self.dim, other.dim)?;
        if self.with_scatter && !other.with_scatter {
            return Err(GeometryError::InvalidParameter {
                name: "merge",
                reason: "the other statistics have no scatter (built with means_only)".into(),
            });
        }
        let d = self.dim;
        for c in 0..self.classes {
            if other.counts[c] == 0 && !other.has_shift[c] {
                continue;
            }
            let n = other.counts[c] as f64;
            let a = &other.sums[c * d..(c + 1) * d];
            if !self.has_shift[c] {
                self.has_shift[c] = true;
                self.shifts[c * d..(c + 1) * d].copy_from_slice(&other.shifts[c * d..(c + 1) * d]);
            } else {
                let e: Vec<f64> = (0..d)
                    .map(|j| other.shifts[c * d + j] - self.shifts[c * d + j])
                    .collect();
                if e.iter().any(|&v| v != 0.0) && other.counts[c] > 0 {
                    // sum (h - s)(h - s)^T = S' + a e^T + e a^T + n e e^T
                    for j in (0..d).filter(|_| self.with_scatter) {
                        let row = &mut self.scatter[j * d..(j + 1) * d];
                        let (ej, aj) = (e[j], a[j]);
                        for k in j..d {
                            row[k] += aj * e[k] + ej * a[k] + n * ej * e[k];
                        }
                    }
                    for j in 0..d {
                        self.sums[c * d + j] += n * e[j];
                    }
                }
            }
            for j in 0..d {
                self.sums[c * d + j] += a[j];
            }
            self.counts[c] += other.counts[c];
            self.norm_sums[c] += other.norm_sums[c];
        }
        for (s, o) in self.scatter.iter_mut().zip(&other.scatter) {
            *s += o;
        }
        Ok(())
    }

    /// Mean of class `c`, `mu_c = s_c + a_c / n_c`.
    pub fn class_mean(&self, c: usize) -> Result<Vec<f64>> {
        if c >= self.classes {
            return Err(GeometryError::LabelOutOfRange {
                label: c,
                classes: self.classes,
            });
        }
        let n = self.counts[c];
        if n == 0 {
            return Err(GeometryError::EmptyClass { class: c });
        }
        let d = self.dim;
        Ok((0..d)
            .map(|j| self.shifts[c * d + j] + self.sums[c * d + j] / n as f64)
            .collect())
    }

    /// Class means `mu_c` as the rows of a C x D matrix; every class must
    /// have a sample.
    pub fn class_means(&self) -> Result<Matrix> {
        let mut data = Vec::with_capacity(self.classes * self.dim);
        for c in 0..self.classes {
            data.extend(self.class_mean(c)?);
        }
        Matrix::new(self.classes, self.dim, data)
    }

    /// Global mean of the samples `mu_G = (1/N) sum_i h_i` (the definition
    /// of Papyan et al.; equals the mean of class means when classes are
    /// balanced).
    pub fn global_mean(&self) -> Result<Vec<f64>> {
        let total = self.total();
        if total == 0 {
            return Err(GeometryError::EmptyClass { class: 0 });
        }
        let d = self.dim;
        let mut g = vec![0.0; d];
        for c in 0..self.classes {
            let n = self.counts[c] as f64;
            if n == 0.0 {
                continue;
            }
            for (j, gj) in g.iter_mut().enumerate() {
                *gj += n * self.shifts[c * d + j] + self.sums[c * d + j];
            }
        }
        g.iter_mut().for_each(|v| *v /= total as f64);
        Ok(g)
    }

    /// Unweighted mean of the class means `(1/C) sum_c mu_c`.
    pub fn mean_of_class_means(&self) -> Result<Vec<f64>> {
        let means = self.class_means()?;
        let mut g = vec![0.0; self.dim];
        for row in means.iter_rows() {
            for (gj, v) in g.iter_mut().zip(row) {
                *gj += v;
            }
        }
        g.iter_mut().for_each(|v| *v /= self.classes as f64);
        Ok(g)
    }

    /// Centred class means `m_c = mu_c - mu_G` as rows of a C x D matrix
    /// (`mu_G` the sample mean, [`global_mean`](Self::global_mean)).
    pub fn centered_means(&self) -> Result<Matrix> {
        let mut means = self.class_means()?;
        let g = self.global_mean()?;
        for c in 0..self.classes {
            for (v, gj) in means.row_mut(c).iter_mut().zip(&g) {
                *v -= gj;
            }
        }
        Ok(means)
    }

    /// Within-class covariance
    /// `Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T` (D x D).
    #[allow(clippy::needless_range_loop)]
    pub fn within_class_cov(&self) -> Result<Matrix> {
        if !self.with_scatter {
            return Err(GeometryError::InvalidParameter {
                name: "within_class_cov",
                reason: "statistics built without the scatter (ClassStats::means_only)".into(),
            });
        }
        let total = self.total();
        if total == 0 {
            return Err(GeometryError::EmptyClass { class: 0 });
        }
        let d = self.dim;
        let mut s = self.scatter.clone();
        for c in 0..self.classes {
            let n = self.counts[c];
            if n == 0 {
                continue;
            }
            let a = &self.sums[c * d..(c + 1) * d];
            let inv = 1.0 / n as f64;
            for j in 0..d {
                let aj = a[j] * inv;
                let row = &mut s[j * d..(j + 1) * d];
                for k in j..d {
                    row[k] -= aj * a[k];
                }
            }
        }
        let inv_n = 1.0 / total as f64;
        let mut out = Matrix::zeros(d, d);
        for j in 0..d {
            for k in j..d {
                let v = s[j * d + k] * inv_n;
                out.set(j, k, v);
                out.set(k, j, v);
            }
        }
        Ok(out)
    }

    /// Between-class covariance
    /// `Sigma_B = (1/C) sum_c (mu_c - mu_G)(mu_c - mu_G)^T` (D x D, Papyan et
    /// al.); every class must have a sample.
    pub fn between_class_cov(&self) -> Result<Matrix> {
        let m = self.centered_means()?;
        let d = self.dim;
        let mut out = Matrix::zeros(d, d);
        let inv_c = 1.0 / self.classes as f64;
        for row in m.iter_rows() {
            for j in 0..d {
                let rj = row[j] * inv_c;
                for (k, &rk) in row.iter().enumerate().skip(j) {
                    let v = out.get(j, k) + rj * rk;
                    out.set(j, k, v);
                }
            }
        }
        for j in 0..d {
            for k in 0..j {
                out.set(j, k, out.get(k, j));
            }
        }
        Ok(out)
    }

    /// Mean feature norm `(1/N) sum_i |h_i|` (the R of a linear head's
    /// softmax centre, field notes §5).
    pub fn mean_norm(&self) -> Result<f64> {
        let total = self.total();
        if total == 0 {
            return Err(GeometryError::EmptyClass { class: 0 });
        }
        Ok(self.norm_sums.iter().sum::<f64>() / total as f64)
    }

    /// Per-class mean feature norm `(1/n_c) sum_{i in c} |h_i|` (NaN for an
    /// empty class).
    pub fn class_mean_norms(&self) -> Vec<f64> {
        self.norm_sums
            .iter()
            .zip(&self.counts)
            .map(|(s, &n)| if n == 0 { f64::NAN } else { s / n as f64 })
            .collect()
    }

    fn empty_like(&self) -> ClassStats {
        let mut e = ClassStats::empty(self.classes, self.dim, self.with_scatter);
        e.has_shift.copy_from_slice(&self.has_shift);
        e.shifts.copy_from_slice(&self.shifts);
        e
    }

    fn validate<T: Copy + Into<f64>>(&self, features: &[T], labels: &[usize]) -> Result<()> {
        check_dim(
            "features length (N * D)",
            labels.len() * self.dim,
            features.len(),
        )?;
        if let Some(&label) = labels.iter().find(|&&l| l >= self.classes) {
            return Err(GeometryError::LabelOutOfRange {
                label,
                classes: self.classes,
            });
        }
        if !features
            .iter()
            .fold(true, |ok, &v| ok & v.into().is_finite())
        {
            return Err(GeometryError::NonFinite { what: "features" });
        }
        Ok(())
    }

    /// Sets `s_c` to the first sample of each class seen for the first time.
    fn assign_shifts<T: Copy + Into<f64>>(&mut self, features: &[T], labels: &[usize]) {
        let d = self.dim;
        for (i, &y) in labels.iter().enumerate() {
            if !self.has_shift[y] {
                self.has_shift[y] = true;
                for j in 0..d {
                    self.shifts[y * d + j] = features[i * d + j].into();
                }
            }
        }
    }

    /// Packs `rows` (shifted by their class shift) into panels and runs the
    /// scatter kernel. Shifts must already be assigned.
    fn push_block<T: Copy + Into<f64>>(
        &mut self,
        rows: &[T],
        labels: &[usize],
        kernel: Kernel,
        buf: &mut Vec<f64>,
    ) {
        let d = self.dim;
        let nr = labels.len();
        if !self.with_scatter {
            for (i, &y) in labels.iter().enumerate() {
                let x = &rows[i * d..(i + 1) * d];
                let shift = &self.shifts[y * d..(y + 1) * d];
                let sum = &mut self.sums[y * d..(y + 1) * d];
                // Eight partial sums of squares: the loop vectorises.
                let mut acc = [0.0f64; 8];
                let mut tail = 0.0;
                let split = d / 8 * 8;
                for ((xb, sb), ub) in x[..split]
                    .chunks_exact(8)
                    .zip(shift[..split].chunks_exact(8))
                    .zip(sum[..split].chunks_exact_mut(8))
                {
                    for l in 0..8 {
                        let xv: f64 = xb[l].into();
                        acc[l] += xv * xv;
                        ub[l] += xv - sb[l];
                    }
                }
                for j in split..d {
                    let xv: f64 = x[j].into();
                    tail += xv * xv;
                    sum[j] += xv - shift[j];
                }
                let sq = acc.iter().sum::<f64>() + tail;
                self.norm_sums[y] += sq.sqrt();
                self.counts[y] += 1;
            }
            return;
        }
        let width = kernel.width();
        let panels = d.div_ceil(width);
        buf.clear();
        buf.resize(panels * nr * width, 0.0);
        for (r, &y) in labels.iter().enumerate() {
            let x = &rows[r * d..(r + 1) * d];
            let shift = &self.shifts[y * d..(y + 1) * d];
            let sum = &mut self.sums[y * d..(y + 1) * d];
            let mut sq = 0.0;
            for j in 0..d {
                let xv: f64 = x[j].into();
                sq += xv * xv;
                let v = xv - shift[j];
                sum[j] += v;
                buf[((j / width) * nr + r) * width + j % width] = v;
            }
            self.norm_sums[y] += sq.sqrt();
            self.counts[y] += 1;
        }
        kernel.run(buf, nr, d, &mut self.scatter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::linalg::dot;
    use crate::geometry::test_rng::lcg;

    fn random_data(n: usize, d: usize, c: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
        let mut s = seed;
        let labels: Vec<usize> = (0..n).map(|i| (i * 7 + (i / 3)) % c).collect();
        let x = (0..n * d)
            .map(|k| 5.0 * (labels[k / d] as f64) + lcg(&mut s) + 100.0)
            .collect();
        (x, labels)
    }

    /// Plain reference: two passes, straight from the definitions.
    #[allow(clippy::needless_range_loop)]
    fn scatter_reference(
        x: &[f64],
        labels: &[usize],
        d: usize,
        c: usize,
    ) -> (Matrix, Matrix, Matrix) {
        let n = labels.len();
        let mut means = Matrix::zeros(c, d);
        let mut counts = vec![0.0; c];
        for i in 0..n {
            counts[labels[i]] += 1.0;
            for j in 0..d {
                let v = means.get(labels[i], j) + x[i * d + j];
                means.set(labels[i], j, v);
            }
        }
        for k in 0..c {
            for j in 0..d {
                means.set(k, j, means.get(k, j) / counts[k]);
            }
        }
        let mut sw = Matrix::zeros(d, d);
        for i in 0..n {
            let y = labels[i];
            for j in 0..d {
                for k in 0..d {
                    let v = sw.get(j, k)
                        + (x[i * d + j] - means.get(y, j)) * (x[i * d + k] - means.get(y, k))
                            / n as f64;
                    sw.set(j, k, v);
                }
            }
        }
        let g: Vec<f64> = (0..d)
            .map(|j| (0..n).map(|i| x[i * d + j]).sum::<f64>() / n as f64)
            .collect();
        let mut sb = Matrix::zeros(d, d);
        for k in 0..c {
            for j in 0..d {
                for l in 0..d {
                    let v = sb.get(j, l)
                        + (means.get(k, j) - g[j]) * (means.get(k, l) - g[l]) / c as f64;
                    sb.set(j, l, v);
                }
            }
        }
        (means, sw, sb)
    }

    fn assert_close(a: &Matrix, b: &Matrix, tol: f64) {
        assert_eq!((a.rows(), a.cols()), (b.rows(), b.cols()));
        for (x, y) in a.as_slice().iter().zip(b.as_slice()) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn matches_reference_for_all_kernels_and_odd_sizes() {
        for &(n, d, c) in &[(1, 1, 1), (37, 5, 3), (600, 21, 4), (300, 33, 7)] {
            let (x, labels) = random_data(n, d, c, n as u64);
            let (means, sw, sb) = scatter_reference(&x, &labels, d, c);
            let mut st = ClassStats::new(c, d);
            st.push_batch(&x, &labels).unwrap();
            assert_close(&st.class_means().unwrap(), &means, 1e-12);
            assert_close(&st.within_class_cov().unwrap(), &sw, 1e-10);
            if c > 1 {
                assert_close(&st.between_class_cov().unwrap(), &sb, 1e-10);
            }
            // Every kernel variant gives the same scatter.
            for kernel in [Kernel::Portable, Kernel::detect()] {
                let mut k = ClassStats::new(c, d);
                k.assign_shifts(&x, &labels);
                let mut buf = Vec::new();
                for (rows, labs) in x.chunks(BLOCK_ROWS * d).zip(labels.chunks(BLOCK_ROWS)) {
                    k.push_block(rows, labs, kernel, &mut buf);
                }
                assert_close(&k.within_class_cov().unwrap(), &sw, 1e-10);
            }
        }
    }

    #[test]
    fn parallel_and_merge_equal_one_pass() {
        let (n, d, c) = (1000, 19, 5);
        let (x, labels) = random_data(n, d, c, 11);
        let mut one = ClassStats::new(c, d);
        one.push_batch(&x, &labels).unwrap();
        let mut par = ClassStats::new(c, d);
        par.push_batch_parallel(&x, &labels, 3).unwrap();
        assert_close(
            &par.within_class_cov().unwrap(),
            &one.within_class_cov().unwrap(),
            1e-10,
        );
        assert_close(
            &par.class_means().unwrap(),
            &one.class_means().unwrap(),
            1e-12,
        );
        // Merge of parts with different shifts (second part starts elsewhere).
        let split = 377;
        let mut a = ClassStats::new(c, d);
        a.push_batch(&x[..split * d], &labels[..split]).unwrap();
        let mut b = ClassStats::new(c, d);
        b.push_batch(&x[split * d..], &labels[split..]).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.counts(), one.counts());
        assert_close(
            &a.within_class_cov().unwrap(),
            &one.within_class_cov().unwrap(),
            1e-10,
        );
        assert_close(
            &a.between_class_cov().unwrap(),
            &one.between_class_cov().unwrap(),
            1e-10,
        );
        assert!((a.mean_norm().unwrap() - one.mean_norm().unwrap()).abs() < 1e-10);
    }

    #[test]
    fn shift_avoids_cancellation_far_from_origin() {
        // Class at 1e8 with spread 1e-3: naive E[x^2] - E[x]^2 loses it.
        let d = 2;
        let mut st = ClassStats::new(1, d);
        let mut s = 5;
        let mut x = Vec::new();
        for _ in 0..1000 {
            x.push(1e8 + 1e-3 * lcg(&mut s));
            x.push(-1e8 + 1e-3 * lcg(&mut s));
        }
        let labels = vec![0; 1000];
        st.push_batch(&x, &labels).unwrap();
        let (_, sw, _) = scatter_reference(&x, &labels, d, 1);
        assert_close(&st.within_class_cov().unwrap(), &sw, 1e-6);
        assert!(st.within_class_cov().unwrap().get(0, 0) > 0.0);
    }

    #[test]
    fn errors_leave_state_unchanged() {
        let mut st = ClassStats::new(2, 2);
        assert!(matches!(
            st.push_batch(&[1.0f32, 2.0, 3.0], &[0, 1]),
            Err(GeometryError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            st.push_batch(&[1.0f32, 2.0], &[2]),
            Err(GeometryError::LabelOutOfRange {
                label: 2,
                classes: 2
            })
        ));
        assert!(matches!(
            st.push_batch(&[1.0f32, 2.0, f32::NAN, 0.0], &[0, 1]),
            Err(GeometryError::NonFinite { .. })
        ));
        assert_eq!(st.total(), 0);
        assert!(matches!(
            st.class_means(),
            Err(GeometryError::EmptyClass { class: 0 })
        ));
        st.push(&[1.0f32, 2.0], 0).unwrap();
        assert!(matches!(
            st.between_class_cov(),
            Err(GeometryError::EmptyClass { class: 1 })
        ));
    }

    #[test]
    fn means_and_norms() {
        let mut st = ClassStats::new(2, 2);
        st.push_batch(&[3.0f32, 4.0, 1.0, 0.0, 0.0, 2.0], &[0, 1, 1])
            .unwrap();
        assert_eq!(st.class_mean(0).unwrap(), vec![3.0, 4.0]);
        assert_eq!(st.class_mean(1).unwrap(), vec![0.5, 1.0]);
        let g = st.global_mean().unwrap();
        assert!((g[0] - 4.0 / 3.0).abs() < 1e-15 && (g[1] - 2.0).abs() < 1e-15);
        let mm = st.mean_of_class_means().unwrap();
        assert!((mm[0] - 1.75).abs() < 1e-15 && (mm[1] - 2.5).abs() < 1e-15);
        assert!((st.mean_norm().unwrap() - 8.0 / 3.0).abs() < 1e-15);
        let m = st.centered_means().unwrap();
        assert!(dot(m.row(0), &[1.0, 0.0]) > 0.0);
    }
}
