//! The softmax output of one class over the feature space (field notes §5;
//! Kansizoglou et al., TPAMI 2022) and the "softmax centre" of a class
//! (field notes §4): the unit direction where the head's own probability
//! for the class is highest.
//!
//! Heads are seen through [`HeadLogits`]: `x` (length D) to C logits, plus a
//! vector-Jacobian product for the analytic gradient. [`LinearHead`]
//! (plain softmax, `W x + b`) and [`CosineHead`] (NormFace / symmetrical
//! layer, `s cos(x, w_j)`) implement it in closed form.

use serde::Serialize;

use super::angles::angle_deg;
use super::error::{GeometryError, Result, check_dim, check_finite};
use super::linalg::{Matrix, axpy, dot, gemm_rows, greater, norm, normalized};
use super::rotor::UnitBivector;

/// A classification head as a function of one feature vector (f64).
pub trait HeadLogits {
    /// Number of classes C.
    fn num_classes(&self) -> usize;

    /// Feature dimension D.
    fn dim(&self) -> usize;

    /// Logits for feature `x` (length D), length C.
    fn logits(&self, x: &[f64]) -> Vec<f64>;

    /// Logits of `k` features at once (row-major `k x D`), row-major
    /// `k x C`. The default calls [`HeadLogits::logits`] row by row; heads
    /// built on dot products override it with a class-outer loop that keeps
    /// each weight in cache for the whole block.
    fn logits_block(&self, xs: &[f64], k: usize) -> Vec<f64> {
        let d = self.dim();
        (0..k)
            .flat_map(|i| self.logits(&xs[i * d..(i + 1) * d]))
            .collect()
    }

    /// Vector-Jacobian product `J(x)^T v` (length D) with
    /// `J_jk = d logit_j / d x_k`. The default uses central differences with
    /// step `1e-6 max(1, |x|)`; implementors should override it analytically.
    fn logits_vjp(&self, x: &[f64], v: &[f64]) -> Vec<f64> {
        let h = 1e-6 * norm(x).max(1.0);
        let mut xp = x.to_vec();
        (0..x.len())
            .map(|k| {
                xp[k] = x[k] + h;
                let lp = self.logits(&xp);
                xp[k] = x[k] - h;
                let lm = self.logits(&xp);
                xp[k] = x[k];
                lp.iter()
                    .zip(&lm)
                    .zip(v)
                    .map(|((a, b), vj)| vj * (a - b) / (2.0 * h))
                    .sum()
            })
            .collect()
    }

    /// Rows `r_j` and optional offsets `b_j` such that, for every `x`,
    /// `argmax_j logit_j(x) = argmax_j (r_j . x + b_j)` (the first index on
    /// ties): a linear decision rule, which lets a streaming pass predict
    /// with one matrix product. `None` (the default): use
    /// [`logits_block`](Self::logits_block).
    fn decision_rule(&self) -> Option<(&Matrix, Option<&[f64]>)> {
        None
    }

    /// Class weight `w_c` when the head has one (defines the landscape plane
    /// and a start of the softmax-centre search).
    fn weight(&self, _class: usize) -> Option<&[f64]> {
        None
    }

    /// The same head with every weight replaced by its projection onto
    /// `plane` (the authors' 2-D view, field notes §5); `None` if the head
    /// cannot do it.
    fn projected(&self, _plane: &UnitBivector) -> Option<Box<dyn HeadLogits>> {
        None
    }
}

/// Plain linear softmax head: `logit_j = w_j . x + b_j`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    weights: Matrix,
    bias: Option<Vec<f64>>,
}

impl LinearHead {
    /// Head with weights `W` (C x D) and optional bias (length C).
    pub fn new(weights: Matrix, bias: Option<Vec<f64>>) -> Result<Self> {
        check_finite("weights", weights.as_slice())?;
        if let Some(b) = &bias {
            check_dim("bias length", weights.rows(), b.len())?;
            check_finite("bias", b)?;
        }
        Ok(Self { weights, bias })
    }
}

impl HeadLogits for LinearHead {
    fn num_classes(&self) -> usize {
        self.weights.rows()
    }

    fn dim(&self) -> usize {
        self.weights.cols()
    }

    fn logits(&self, x: &[f64]) -> Vec<f64> {
        self.weights
            .iter_rows()
            .enumerate()
            .map(|(j, w)| dot(w, x) + self.bias.as_ref().map_or(0.0, |b| b[j]))
            .collect()
    }

    fn logits_block(&self, xs: &[f64], k: usize) -> Vec<f64> {
        let mut out = block_dots(xs, k, &self.weights);
        if let Some(b) = &self.bias {
            let c = b.len();
            for (i, v) in out.iter_mut().enumerate() {
                *v += b[i % c];
            }
        }
        out
    }

    /// `J = W`, so `J^T v = sum_j v_j w_j`.
    fn logits_vjp(&self, _x: &[f64], v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.dim()];
        for (w, &vj) in self.weights.iter_rows().zip(v) {
            axpy(vj, w, &mut out);
        }
        out
    }

    fn weight(&self, class: usize) -> Option<&[f64]> {
        (class < self.weights.rows()).then(|| self.weights.row(class))
    }

    fn decision_rule(&self) -> Option<(&Matrix, Option<&[f64]>)> {
        Some((&self.weights, self.bias.as_deref()))
    }

    fn projected(&self, plane: &UnitBivector) -> Option<Box<dyn HeadLogits>> {
        let weights = project_rows(&self.weights, plane)?;
        Some(Box::new(LinearHead {
            weights,
            bias: self.bias.clone(),
        }))
    }
}

/// Normalised cosine head (NormFace, symmetrical layer at test time):
/// `logit_j = s cos(x, w_j)` (field notes §2-3). A zero `x` or zero `w_j`
/// gives cosine 0.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineHead {
    weights: Matrix,
    unit: Matrix,
    scale: f64,
}

impl CosineHead {
    /// Head with weights `W` (C x D) and scale `s > 0` (16 in the authors'
    /// code).
    pub fn new(weights: Matrix, scale: f64) -> Result<Self> {
        check_finite("weights", weights.as_slice())?;
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(GeometryError::InvalidParameter {
                name: "scale",
                reason: format!("must be positive and finite, got {scale}"),
            });
        }
        let mut unit = weights.clone();
        for c in 0..unit.rows() {
            let n = norm(unit.row(c));
            if n > 0.0 {
                unit.row_mut(c).iter_mut().for_each(|v| *v /= n);
            }
        }
        Ok(Self {
            weights,
            unit,
            scale,
        })
    }
}

impl HeadLogits for CosineHead {
    fn num_classes(&self) -> usize {
        self.weights.rows()
    }

    fn dim(&self) -> usize {
        self.weights.cols()
    }

    fn logits(&self, x: &[f64]) -> Vec<f64> {
        let nx = norm(x);
        let inv = if nx > 0.0 { 1.0 / nx } else { 0.0 };
        self.unit
            .iter_rows()
            .map(|w| self.scale * dot(w, x) * inv)
            .collect()
    }

    fn logits_block(&self, xs: &[f64], k: usize) -> Vec<f64> {
        let (d, c) = (self.unit.cols(), self.unit.rows());
        let mut out = block_dots(xs, k, &self.unit);
        for i in 0..k {
            let nx = norm(&xs[i * d..(i + 1) * d]);
            let inv = if nx > 0.0 { self.scale / nx } else { 0.0 };
            out[i * c..(i + 1) * c].iter_mut().for_each(|v| *v *= inv);
        }
        out
    }

    /// `d cos_j / dx = (w^_j - cos_j x^) / |x|`.
    fn logits_vjp(&self, x: &[f64], v: &[f64]) -> Vec<f64> {
        let nx = norm(x);
        let mut out = vec![0.0; self.dim()];
        if !greater(nx, 0.0) {
            return out;
        }
        let mut cos_sum = 0.0;
        for (w, &vj) in self.unit.iter_rows().zip(v) {
            cos_sum += vj * dot(w, x) / nx;
            axpy(vj, w, &mut out);
        }
        for (o, xi) in out.iter_mut().zip(x) {
            *o = self.scale * (*o - cos_sum * xi / nx) / nx;
        }
        out
    }

    fn weight(&self, class: usize) -> Option<&[f64]> {
        (class < self.weights.rows()).then(|| self.weights.row(class))
    }

    /// `s cos(x, w_j) = (s / |x|) (w^_j . x)` with `s / |x| > 0`, and every
    /// logit is 0 at `x = 0`, as every `w^_j . x`.
    fn decision_rule(&self) -> Option<(&Matrix, Option<&[f64]>)> {
        Some((&self.unit, None))
    }

    fn projected(&self, plane: &UnitBivector) -> Option<Box<dyn HeadLogits>> {
        let weights = project_rows(&self.weights, plane)?;
        CosineHead::new(weights, self.scale)
            .ok()
            .map(|h| Box::new(h) as Box<dyn HeadLogits>)
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// `log p_c = l_c - logsumexp(l)`.
fn log_softmax_at(logits: &[f64], c: usize) -> f64 {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = logits.iter().map(|l| (l - m).exp()).sum();
    logits[c] - m - s.ln()
}

/// Index of the largest logit (ties: lowest index).
pub fn predict(head: &dyn HeadLogits, x: &[f64]) -> usize {
    let l = head.logits(x);
    let mut best = 0;
    for (j, v) in l.iter().enumerate() {
        if *v > l[best] {
            best = j;
        }
    }
    best
}

/// Every row of `m` projected onto the plane of `plane` (None if a
/// projection fails).
fn project_rows(m: &Matrix, plane: &UnitBivector) -> Option<Matrix> {
    let rows: Vec<Vec<f64>> = m
        .iter_rows()
        .map(|w| plane.project(w).ok())
        .collect::<Option<_>>()?;
    Matrix::from_rows(&rows).ok()
}

/// `xs (k x D) . rows(m)^T` as row-major `k x C` (one [`gemm_rows`] call).
pub fn block_dots(xs: &[f64], k: usize, m: &Matrix) -> Vec<f64> {
    gemm_rows(xs, k, m)
}

/// Index of the largest value (the first one on ties), as [`predict`].
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (j, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = j;
        }
    }
    best
}

/// Which weights the landscape uses for points of the plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PlaneWeights {
    /// The head as it is (what the network outputs for in-plane features).
    Exact,
    /// Every weight projected onto the plane first (the authors' 2-D view,
    /// field notes §5). Same as `Exact` for a linear head; differs for
    /// cosine heads, whose norms of the projected weights change.
    Projected,
}

/// `p_c` over a grid of feature norms `R` and in-plane angles `theta`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Landscape {
    /// The class c.
    pub class: usize,
    /// Feature norms R.
    pub rs: Vec<f64>,
    /// Angles theta in degrees, measured from `w_c` towards `x`.
    pub thetas_deg: Vec<f64>,
    /// `p[r][t] = p_c(R_r (cos theta_t e1 + sin theta_t e2))`, `e1 = w_c/|w_c|`,
    /// `e2` in the plane of `x` and `w_c`, orthogonal to `e1`, towards `x`.
    pub p: Vec<Vec<f64>>,
    /// Angle of the reference feature `x` in that plane (degrees).
    pub x_theta_deg: f64,
    /// Norm of the reference feature `x`.
    pub x_norm: f64,
    /// Weights used.
    pub mode: PlaneWeights,
}

/// Softmax landscape of class `class` (field notes §5): `p_c` as a function
/// of the feature norm R and angle theta inside the plane of the unit
/// bivector `w_c ^ x / |w_c ^ x|`. Errors if the head has no weight `w_c`,
/// `x` is parallel to `w_c`, or `Projected` is not supported by the head.
pub fn softmax_landscape(
    head: &dyn HeadLogits,
    class: usize,
    x: &[f64],
    rs: &[f64],
    thetas_deg: &[f64],
    mode: PlaneWeights,
) -> Result<Landscape> {
    check_class(head, class)?;
    check_dim("feature length", head.dim(), x.len())?;
    let w = head.weight(class).ok_or(GeometryError::InvalidParameter {
        name: "head",
        reason: "the head exposes no class weight to define the plane".into(),
    })?;
    let plane = UnitBivector::from_vectors(w, x)?;
    let projected;
    let eval: &dyn HeadLogits = match mode {
        PlaneWeights::Exact => head,
        PlaneWeights::Projected => {
            projected = head
                .projected(&plane)
                .ok_or(GeometryError::InvalidParameter {
                    name: "mode",
                    reason: "the head cannot project its weights onto a plane".into(),
                })?;
            projected.as_ref()
        }
    };
    let p = rs
        .iter()
        .map(|&r| {
            thetas_deg
                .iter()
                .map(|&t| {
                    let (s, c) = t.to_radians().sin_cos();
                    softmax(&eval.logits(&plane.point(r * c, r * s)))[class]
                })
                .collect()
        })
        .collect();
    let (cx, cy) = plane.coords(x)?;
    Ok(Landscape {
        class,
        rs: rs.to_vec(),
        thetas_deg: thetas_deg.to_vec(),
        p,
        x_theta_deg: cy.atan2(cx).to_degrees(),
        x_norm: norm(x),
        mode,
    })
}

/// Settings of [`softmax_center`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CenterOptions {
    /// Feature norm R at which `p_c(R u)` is maximised. A cosine head does
    /// not depend on R (use 1); for a linear head use the mean feature norm
    /// of the data ([`ClassStats::mean_norm`](super::stats::ClassStats::mean_norm)).
    pub radius: f64,
    /// Iteration cap per start (default 5000).
    pub max_iter: usize,
    /// Stop when the Riemannian gradient norm of `log p_c` is below this
    /// (default 1e-10).
    pub grad_tol: f64,
}

impl Default for CenterOptions {
    fn default() -> Self {
        Self {
            radius: 1.0,
            max_iter: 5000,
            grad_tol: 1e-10,
        }
    }
}

/// Result of [`softmax_center`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoftmaxCenter {
    /// The class c.
    pub class: usize,
    /// Unit direction `u*` maximising `p_c(R u)`.
    pub direction: Vec<f64>,
    /// `p_c(R u*)`.
    pub p: f64,
    /// Angle between `u*` and `w_c` (degrees; NaN if the head has no weight).
    pub angle_to_weight_deg: f64,
    /// Angle between `u*` and the given mean (degrees; NaN if none given).
    pub angle_to_mean_deg: f64,
    /// Iterations used by the winning start.
    pub iterations: usize,
    /// Whether the winning start met `grad_tol`.
    pub converged: bool,
}

/// Softmax centre of class `class` (field notes §4): the unit `u` maximising
/// `p_c(R u)`, by projected gradient ascent on the sphere of `log p_c` with
/// the analytic gradient `grad_x log p_c = J^T (e_c - p)` (tangent part,
/// retraction by normalisation, Armijo backtracking with step growth),
/// started at `w_c/|w_c|` and at `mean` (if given; e.g. `mu_c`); the start
/// with the larger final `p_c` wins. `R = options.radius` (see
/// [`CenterOptions`]).
pub fn softmax_center(
    head: &dyn HeadLogits,
    class: usize,
    mean: Option<&[f64]>,
    options: CenterOptions,
) -> Result<SoftmaxCenter> {
    check_class(head, class)?;
    if !(options.radius > 0.0 && options.radius.is_finite()) {
        return Err(GeometryError::InvalidParameter {
            name: "radius",
            reason: format!("must be positive and finite, got {}", options.radius),
        });
    }
    if let Some(m) = mean {
        check_dim("mean length", head.dim(), m.len())?;
    }
    let starts: Vec<Vec<f64>> = [head.weight(class), mean]
        .into_iter()
        .flatten()
        .filter_map(normalized)
        .collect();
    if starts.is_empty() {
        return Err(GeometryError::InvalidParameter {
            name: "mean",
            reason: "no start: the head has no non-zero weight and no non-zero mean was given"
                .into(),
        });
    }
    let mut best: Option<(Vec<f64>, f64, usize, bool)> = None;
    for start in starts {
        let (u, f, it, conv) = ascend(head, class, start, options);
        if best.as_ref().is_none_or(|b| f > b.1) {
            best = Some((u, f, it, conv));
        }
    }
    let (direction, f, iterations, converged) = best.expect("at least one start");
    Ok(SoftmaxCenter {
        class,
        p: f.exp(),
        angle_to_weight_deg: head
            .weight(class)
            .map_or(f64::NAN, |w| angle_deg(&direction, w)),
        angle_to_mean_deg: mean.map_or(f64::NAN, |m| angle_deg(&direction, m)),
        direction,
        iterations,
        converged,
    })
}

/// `(log p_c(R u), Riemannian gradient wrt u)`.
fn objective(head: &dyn HeadLogits, class: usize, u: &[f64], r: f64) -> (f64, Vec<f64>) {
    let x: Vec<f64> = u.iter().map(|v| r * v).collect();
    let logits = head.logits(&x);
    let f = log_softmax_at(&logits, class);
    let mut v: Vec<f64> = softmax(&logits).iter().map(|p| -p).collect();
    v[class] += 1.0;
    let mut g = head.logits_vjp(&x, &v);
    g.iter_mut().for_each(|gi| *gi *= r);
    let radial = dot(&g, u);
    axpy(-radial, u, &mut g);
    (f, g)
}

fn ascend(
    head: &dyn HeadLogits,
    class: usize,
    mut u: Vec<f64>,
    opt: CenterOptions,
) -> (Vec<f64>, f64, usize, bool) {
    let (mut f, mut g) = objective(head, class, &u, opt.radius);
    let mut step = 1.0;
    for it in 0..opt.max_iter {
        let gn = norm(&g);
        if !greater(gn, opt.grad_tol) {
            return (u, f, it, true);
        }
        let mut accepted = false;
        while step * gn > 1e-16 {
            let mut cand = u.clone();
            axpy(step, &g, &mut cand);
            let cand = normalized(&cand).unwrap_or_else(|| u.clone());
            let (fc, gc) = objective(head, class, &cand, opt.radius);
            if fc >= f + 1e-4 * step * gn * gn {
                u = cand;
                f = fc;
                g = gc;
                step *= 2.0;
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            // No ascent possible at machine precision: a stationary point.
            return (u, f, it, true);
        }
    }
    let converged = norm(&g) <= opt.grad_tol;
    (u, f, opt.max_iter, converged)
}

fn check_class(head: &dyn HeadLogits, class: usize) -> Result<()> {
    if class >= head.num_classes() {
        return Err(GeometryError::LabelOutOfRange {
            label: class,
            classes: head.num_classes(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::test_rng::lcg;

    #[test]
    fn block_dots_match_plain_dot_products() {
        for (k, d, c) in [(1, 1, 2), (3, 5, 3), (4, 8, 2), (9, 13, 7), (16, 512, 10)] {
            let xs: Vec<f64> = (0..k * d)
                .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
                .collect();
            let m = Matrix::from_fn(c, d, |r, q| ((r * 13 + q * 7) % 17) as f64 - 8.0);
            let got = block_dots(&xs, k, &m);
            for i in 0..k {
                for j in 0..c {
                    let want: f64 = (0..d).map(|q| xs[i * d + q] * m.get(j, q)).sum();
                    assert!(
                        (got[i * c + j] - want).abs() < 1e-9 * (1.0 + want.abs()),
                        "k {k} d {d} [{i},{j}]"
                    );
                }
            }
        }
    }
    use crate::geometry::polygon::polygon_weights;

    #[test]
    fn analytic_vjp_matches_finite_differences() {
        struct Fd<'a>(&'a dyn HeadLogits);
        impl HeadLogits for Fd<'_> {
            fn num_classes(&self) -> usize {
                self.0.num_classes()
            }
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn logits(&self, x: &[f64]) -> Vec<f64> {
                self.0.logits(x)
            }
        }
        let mut s = 5;
        let w = Matrix::from_fn(4, 6, |_, _| lcg(&mut s));
        let x: Vec<f64> = (0..6).map(|_| lcg(&mut s)).collect();
        let v: Vec<f64> = (0..4).map(|_| lcg(&mut s)).collect();
        let lin = LinearHead::new(w.clone(), Some(vec![0.1, -0.2, 0.3, 0.0])).unwrap();
        let cos = CosineHead::new(w, 16.0).unwrap();
        for head in [&lin as &dyn HeadLogits, &cos] {
            let a = head.logits_vjp(&x, &v);
            let n = Fd(head).logits_vjp(&x, &v);
            for (p, q) in a.iter().zip(&n) {
                assert!((p - q).abs() < 1e-6 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn polygon_cosine_head_center_is_the_weight() {
        let v1 = [0.3, 0.9, -0.2, 0.5, 0.1];
        let v2 = [0.7, 0.1, 0.4, -0.3, 0.8];
        let w = polygon_weights(&v1, &v2, 10).unwrap();
        let head = CosineHead::new(w.clone(), 16.0).unwrap();
        for c in [0, 3, 7] {
            // Start from a perturbed mean so the ascent really runs.
            let mean: Vec<f64> = w
                .row(c)
                .iter()
                .enumerate()
                .map(|(j, v)| v + 0.2 * (j as f64).cos())
                .collect();
            let sc = softmax_center(&head, c, Some(&mean), CenterOptions::default()).unwrap();
            assert!(
                sc.angle_to_weight_deg < 1e-6,
                "class {c}: {}",
                sc.angle_to_weight_deg
            );
            assert!((sc.p - crate::geometry::polygon::p_max(16.0, 10)).abs() < 1e-12);
            assert!(sc.converged);
            // The ascent from the mean alone also reaches w_c.
            let alone = ascend(
                &head,
                c,
                normalized(&mean).unwrap(),
                CenterOptions::default(),
            );
            assert!(
                angle_deg(&alone.0, w.row(c)) < 1e-4,
                "{}",
                angle_deg(&alone.0, w.row(c))
            );
        }
    }

    #[test]
    fn asymmetric_weights_center_is_not_the_weight() {
        // Three unit weights in the plane at 0, 40 and 200 degrees.
        let deg = |d: f64| [d.to_radians().cos(), d.to_radians().sin(), 0.0];
        let w = Matrix::from_rows(&[deg(0.0).to_vec(), deg(40.0).to_vec(), deg(200.0).to_vec()])
            .unwrap();
        let head = CosineHead::new(w.clone(), 16.0).unwrap();
        let sc = softmax_center(&head, 0, None, CenterOptions::default()).unwrap();
        println!(
            "asymmetric cosine head: softmax centre {:.3} deg from w_0",
            sc.angle_to_weight_deg
        );
        assert!(sc.angle_to_weight_deg > 10.0, "{}", sc.angle_to_weight_deg);
        assert!(sc.converged);
        // Pushed away from the close neighbour at 40 degrees: negative angle side.
        assert!(sc.direction[1] < 0.0);
        // Linear head with random weights: centre differs from w_c as well.
        let mut s = 9;
        let wl = Matrix::from_fn(5, 8, |_, _| lcg(&mut s));
        let lin = LinearHead::new(wl.clone(), None).unwrap();
        let opts = CenterOptions {
            radius: 3.0,
            ..CenterOptions::default()
        };
        let sl = softmax_center(&lin, 2, None, opts).unwrap();
        println!(
            "random linear head: softmax centre {:.3} deg from w_2",
            sl.angle_to_weight_deg
        );
        assert!(sl.angle_to_weight_deg > 5.0 && sl.converged);
    }

    #[test]
    fn landscape_grid() {
        let w = polygon_weights(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], 4).unwrap();
        let head = CosineHead::new(w, 16.0).unwrap();
        let x = [0.5, 0.5, 0.7];
        let thetas: Vec<f64> = (-4..=4).map(|k| 45.0 * k as f64).collect();
        let l = softmax_landscape(&head, 0, &x, &[1.0, 5.0], &thetas, PlaneWeights::Exact).unwrap();
        assert_eq!(l.p.len(), 2);
        assert_eq!(l.p[0].len(), thetas.len());
        // Cosine head: independent of R; peak at theta = 0.
        for (a, b) in l.p[0].iter().zip(&l.p[1]) {
            assert!((a - b).abs() < 1e-14);
        }
        let peak = l.p[0].iter().copied().fold(0.0, f64::max);
        assert_eq!(peak, l.p[0][4]);
        // Projected: class 1 weight (e2 direction) becomes partly in-plane.
        let lp = softmax_landscape(&head, 0, &x, &[1.0], &thetas, PlaneWeights::Projected).unwrap();
        assert!((lp.p[0][5] - l.p[0][5]).abs() > 1e-3);
        assert!(l.x_theta_deg > 0.0 && l.x_theta_deg < 90.0);
        // Linear head: larger R sharpens the peak (field notes §5).
        let lin =
            LinearHead::new(polygon_weights(&[1.0, 0.0], &[0.0, 1.0], 4).unwrap(), None).unwrap();
        let ll = softmax_landscape(
            &lin,
            0,
            &[1.0, 1.0],
            &[1.0, 10.0],
            &[0.0, 30.0],
            PlaneWeights::Exact,
        )
        .unwrap();
        assert!(ll.p[1][0] > ll.p[0][0] && ll.p[1][1] > ll.p[0][1]);
        assert!(
            softmax_landscape(
                &head,
                0,
                &[2.0, 0.0, 0.0],
                &[1.0],
                &[0.0],
                PlaneWeights::Exact
            )
            .is_err()
        );
    }
}
