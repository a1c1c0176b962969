//! Geometric (Clifford) algebra in R^D as the authors use it (field notes §5;
//! Kansizoglou et al., "Deep Feature Space: A Geometrical Perspective",
//! TPAMI 2022): the wedge product of two vectors, the unit bivector of their
//! plane, projection onto that plane, and rotors `R = exp(-B^ theta / 2)`
//! that rotate inside the plane and leave the orthogonal complement fixed.
//!
//! A simple bivector is stored by its two factors (O(D) memory);
//! [`Bivector::components`] gives the antisymmetric D x D matrix
//! `B_ij = a_i b_j - a_j b_i` when needed.

use super::error::{GeometryError, Result, check_dim};
use super::linalg::{Matrix, axpy, dot, greater, norm};

/// A simple bivector `a ^ b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bivector {
    a: Vec<f64>,
    b: Vec<f64>,
}

/// Wedge (outer) product `a ^ b` of two vectors of equal length.
pub fn wedge(a: &[f64], b: &[f64]) -> Result<Bivector> {
    check_dim("wedge vector lengths", a.len(), b.len())?;
    Ok(Bivector {
        a: a.to_vec(),
        b: b.to_vec(),
    })
}

impl Bivector {
    /// Magnitude `|a ^ b| = |a| |b| sin(angle(a, b))` (the area of the
    /// parallelogram), computed as `|a| |b_perp|` with `b_perp` the part of
    /// `b` orthogonal to `a` (no cancellation for small angles).
    pub fn norm(&self) -> f64 {
        let na = norm(&self.a);
        if na == 0.0 {
            return 0.0;
        }
        let mut perp = self.b.clone();
        let c = dot(&self.a, &perp) / (na * na);
        axpy(-c, &self.a, &mut perp);
        na * norm(&perp)
    }

    /// Antisymmetric components `B_ij = a_i b_j - a_j b_i` (D x D);
    /// `|B|_F = sqrt(2) |a ^ b|`.
    pub fn components(&self) -> Matrix {
        let d = self.a.len();
        Matrix::from_fn(d, d, |i, j| self.a[i] * self.b[j] - self.a[j] * self.b[i])
    }

    /// Unit bivector `(a ^ b) / |a ^ b|` of the plane; errors if `a` and
    /// `b` are (numerically) parallel or zero.
    pub fn unit(&self) -> Result<UnitBivector> {
        UnitBivector::from_vectors(&self.a, &self.b)
    }
}

/// Unit bivector `B^ = e1 ^ e2` of an oriented plane, kept as its
/// orthonormal basis: `e1 = a/|a|`, `e2` the normalised part of `b`
/// orthogonal to `a`. `B^ B^ = -1`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitBivector {
    e1: Vec<f64>,
    e2: Vec<f64>,
}

impl UnitBivector {
    /// Unit bivector of the plane of `a` and `b`, oriented from `a` to `b`.
    /// Errors with `RankTooLow` when `|a ^ b| <= 1e-12 |a| |b|`.
    pub fn from_vectors(a: &[f64], b: &[f64]) -> Result<Self> {
        check_dim("bivector vector lengths", a.len(), b.len())?;
        let (na, nb) = (norm(a), norm(b));
        let degenerate = || GeometryError::RankTooLow {
            what: "plane of two vectors (zero or parallel)",
            needed: 2,
            got: 1,
        };
        if !(na > 0.0 && nb > 0.0) {
            return Err(degenerate());
        }
        let e1: Vec<f64> = a.iter().map(|v| v / na).collect();
        let mut e2 = b.to_vec();
        for _ in 0..2 {
            let c = dot(&e1, &e2);
            axpy(-c, &e1, &mut e2);
        }
        let n2 = norm(&e2);
        if !greater(n2, 1e-12 * nb) {
            return Err(degenerate());
        }
        e2.iter_mut().for_each(|v| *v /= n2);
        Ok(Self { e1, e2 })
    }

    /// First basis vector (direction of `a`).
    pub fn e1(&self) -> &[f64] {
        &self.e1
    }

    /// Second basis vector (in-plane, orthogonal to `e1`, towards `b`).
    pub fn e2(&self) -> &[f64] {
        &self.e2
    }

    /// Dimension D of the ambient space.
    pub fn dim(&self) -> usize {
        self.e1.len()
    }

    /// In-plane coordinates `(v . e1, v . e2)`.
    pub fn coords(&self, v: &[f64]) -> Result<(f64, f64)> {
        check_dim("vector length", self.dim(), v.len())?;
        Ok((dot(v, &self.e1), dot(v, &self.e2)))
    }

    /// Projection of `v` onto the plane, `(v . B^) B^^-1 =
    /// (v.e1) e1 + (v.e2) e2`.
    pub fn project(&self, v: &[f64]) -> Result<Vec<f64>> {
        let (x, y) = self.coords(v)?;
        Ok(self.point(x, y))
    }

    /// Rejection `v - project(v)` (the part orthogonal to the plane).
    pub fn reject(&self, v: &[f64]) -> Result<Vec<f64>> {
        let p = self.project(v)?;
        Ok(v.iter().zip(p).map(|(a, b)| a - b).collect())
    }

    /// The vector `x e1 + y e2`.
    pub fn point(&self, x: f64, y: f64) -> Vec<f64> {
        self.e1
            .iter()
            .zip(&self.e2)
            .map(|(a, b)| x * a + y * b)
            .collect()
    }

    /// Antisymmetric components of `e1 ^ e2` (D x D).
    pub fn components(&self) -> Matrix {
        Bivector {
            a: self.e1.clone(),
            b: self.e2.clone(),
        }
        .components()
    }
}

/// Rotor `R = exp(-B^ theta / 2) = cos(theta/2) - sin(theta/2) B^`; the
/// sandwich `v -> R v R~` rotates by `theta` inside the plane of `B^`, from
/// `e1` towards `e2`, and leaves the orthogonal complement unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotor {
    plane: UnitBivector,
    angle: f64,
}

impl Rotor {
    /// Rotor by `angle_rad` in the plane `plane`.
    pub fn new(plane: UnitBivector, angle_rad: f64) -> Self {
        Self {
            plane,
            angle: angle_rad,
        }
    }

    /// Rotor taking the direction of `a` to the direction of `b` (plane
    /// `a ^ b`, angle `angle(a, b)`). Errors when `a`, `b` are parallel.
    pub fn between(a: &[f64], b: &[f64]) -> Result<Self> {
        let plane = UnitBivector::from_vectors(a, b)?;
        let angle = super::angles::angle_rad(a, b);
        Ok(Self::new(plane, angle))
    }

    /// Rotation angle in radians.
    pub fn angle(&self) -> f64 {
        self.angle
    }

    /// Its plane.
    pub fn plane(&self) -> &UnitBivector {
        &self.plane
    }

    /// Scalar part `cos(theta/2)`.
    pub fn scalar(&self) -> f64 {
        (0.5 * self.angle).cos()
    }

    /// Coefficient of `B^` in the rotor, `-sin(theta/2)`.
    pub fn bivector_coefficient(&self) -> f64 {
        -(0.5 * self.angle).sin()
    }

    /// Reverse `R~ = cos(theta/2) + sin(theta/2) B^` (the inverse rotation).
    pub fn reverse(&self) -> Rotor {
        Rotor::new(self.plane.clone(), -self.angle)
    }

    /// `R v R~`. The part of `v` orthogonal to the plane commutes with `B^`
    /// and is unchanged; the in-plane part `p` anticommutes, so
    /// `R p R~ = R^2 p = (cos theta - sin theta B^) p`, which with
    /// `e1 e2 e1 = -e2`, `e1 e2 e2 = e1` is
    /// `(x cos - y sin) e1 + (x sin + y cos) e2` for `p = x e1 + y e2`.
    pub fn rotate(&self, v: &[f64]) -> Result<Vec<f64>> {
        let (x, y) = self.plane.coords(v)?;
        let (s, c) = self.angle.sin_cos();
        let (nx, ny) = (x * c - y * s, x * s + y * c);
        let (dx, dy) = (nx - x, ny - y);
        Ok(v.iter()
            .zip(self.plane.e1.iter().zip(&self.plane.e2))
            .map(|(vi, (a, b))| vi + dx * a + dy * b)
            .collect())
    }

    /// The D x D rotation matrix of the rotor, in the authors' form
    /// `R = I + (e2 e1^T - e1 e2^T) sin theta + (e1 e1^T + e2 e2^T)(cos theta - 1)`
    /// (field notes §2).
    pub fn matrix(&self) -> Matrix {
        let (e1, e2) = (&self.plane.e1, &self.plane.e2);
        let (s, c) = self.angle.sin_cos();
        let d = e1.len();
        Matrix::from_fn(d, d, |i, j| {
            let id = if i == j { 1.0 } else { 0.0 };
            id + (e2[i] * e1[j] - e1[i] * e2[j]) * s + (e1[i] * e1[j] + e2[i] * e2[j]) * (c - 1.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol)
    }

    #[test]
    fn wedge_norm_is_area() {
        let b = wedge(&[2.0, 0.0, 0.0], &[3.0, 4.0, 0.0]).unwrap();
        assert!((b.norm() - 8.0).abs() < 1e-14);
        let comp = b.components();
        assert_eq!(comp.get(0, 1), 8.0);
        assert_eq!(comp.get(1, 0), -8.0);
        assert!((comp.frobenius_norm() - 2f64.sqrt() * 8.0).abs() < 1e-12);
        let t: f64 = 1e-10;
        assert!((wedge(&[1.0, 0.0], &[t.cos(), t.sin()]).unwrap().norm() - t).abs() < 1e-24);
        assert!(wedge(&[1.0, 1.0], &[2.0, 2.0]).unwrap().unit().is_err());
    }

    #[test]
    fn rotor_2d_matches_rotation_matrix() {
        let plane = UnitBivector::from_vectors(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
        let t: f64 = 0.7;
        let r = Rotor::new(plane, t);
        let v = [0.3, -1.2];
        let got = r.rotate(&v).unwrap();
        let want = [
            t.cos() * v[0] - t.sin() * v[1],
            t.sin() * v[0] + t.cos() * v[1],
        ];
        assert!(close(&got, &want, 1e-15));
        assert!(close(&r.reverse().rotate(&got).unwrap(), &v, 1e-15));
        assert!((r.scalar().powi(2) + r.bivector_coefficient().powi(2) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn rotor_3d_matches_rodrigues() {
        let (a, b) = ([1.0, 2.0, 0.5], [-0.3, 0.4, 2.0]);
        let plane = UnitBivector::from_vectors(&a, &b).unwrap();
        let (e1, e2) = (plane.e1().to_vec(), plane.e2().to_vec());
        let k = [
            e1[1] * e2[2] - e1[2] * e2[1],
            e1[2] * e2[0] - e1[0] * e2[2],
            e1[0] * e2[1] - e1[1] * e2[0],
        ];
        let t: f64 = 2.1;
        let r = Rotor::new(plane, t);
        let v = [0.7, -0.1, 1.3];
        let kv = dot(&k, &v);
        let kxv = [
            k[1] * v[2] - k[2] * v[1],
            k[2] * v[0] - k[0] * v[2],
            k[0] * v[1] - k[1] * v[0],
        ];
        let want: Vec<f64> = (0..3)
            .map(|i| v[i] * t.cos() + kxv[i] * t.sin() + k[i] * kv * (1.0 - t.cos()))
            .collect();
        let got = r.rotate(&v).unwrap();
        assert!(close(&got, &want, 1e-14), "{got:?} vs {want:?}");
        let via_matrix = r.matrix().mul_vec(&v).unwrap();
        assert!(close(&via_matrix, &want, 1e-14));
    }

    #[test]
    fn rotor_in_nd_keeps_complement_and_norm() {
        let d = 9;
        let a: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..d).map(|i| (i as f64 * 1.3 + 0.2).cos()).collect();
        let v: Vec<f64> = (0..d).map(|i| i as f64 - 4.0).collect();
        let plane = UnitBivector::from_vectors(&a, &b).unwrap();
        let r = Rotor::new(plane.clone(), 1.1);
        let w = r.rotate(&v).unwrap();
        assert!((norm(&w) - norm(&v)).abs() < 1e-12);
        assert!(close(
            &plane.reject(&w).unwrap(),
            &plane.reject(&v).unwrap(),
            1e-12
        ));
        let pv = plane.project(&v).unwrap();
        let pw = plane.project(&w).unwrap();
        assert!((super::super::angles::angle_rad(&pv, &pw) - 1.1).abs() < 1e-12);
        // Rotor::between maps a's direction to b's.
        let rb = Rotor::between(&a, &b).unwrap();
        let ra = rb.rotate(&a).unwrap();
        let scale = norm(&a) / norm(&b);
        assert!(close(
            &ra,
            &b.iter().map(|x| x * scale).collect::<Vec<_>>(),
            1e-12
        ));
    }
}
