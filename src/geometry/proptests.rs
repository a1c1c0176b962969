//! Property tests: invariance of the metrics under a common rotation of
//! features and weights and a positive rescaling of features; merging
//! partial statistics equals one pass.

use proptest::prelude::*;

use super::angles::{Compactness, row_angles_deg, separation};
use super::collapse::{
    equiangularity, equinorm, mean_abs_cos_plus, nc1, nc3, polygon_gram_error, symmetry,
};
use super::landscape::{CenterOptions, CosineHead, softmax_center};
use super::linalg::{Matrix, gram_schmidt_columns};
use super::stats::ClassStats;
use super::test_rng::lcg;

/// Features around random class centres: (features N x D, labels).
fn dataset(c: usize, d: usize, per: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
    let mut s = seed;
    let centers = Matrix::from_fn(c, d, |_, _| 2.0 * lcg(&mut s) + 1.0);
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for i in 0..c * per {
        let y = i % c;
        labels.push(y);
        for j in 0..d {
            x.push(centers.get(y, j) + 0.6 * lcg(&mut s));
        }
    }
    (x, labels)
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

fn all_close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| rel_close(*x, *y, tol))
}

proptest! {
    // Failures print their inputs; a fixed bug gets a named regression test.
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn rotation_and_feature_scale_invariance(
        c in 2usize..6,
        extra in 0usize..4,
        per in 3usize..8,
        seed in any::<u64>(),
        alpha in 0.05f64..20.0,
    ) {
        let d = c + extra;
        let (x, labels) = dataset(c, d, per, seed);
        let mut s = seed ^ 0x9e37_79b9;
        let w = Matrix::from_fn(c, d, |_, _| lcg(&mut s));
        let q = gram_schmidt_columns(&Matrix::from_fn(d, d, |_, _| lcg(&mut s))).unwrap();
        // x' = alpha Q x (rows: x Q^T), w' = Q w.
        let xm = Matrix::new(labels.len(), d, x.clone()).unwrap();
        let xr: Vec<f64> = xm.matmul(&q.transpose()).unwrap().into_vec().iter().map(|v| alpha * v).collect();
        let wr = w.matmul(&q.transpose()).unwrap();

        let mut st = ClassStats::new(c, d);
        st.push_batch(&x, &labels).unwrap();
        let mut sr = ClassStats::new(c, d);
        sr.push_batch(&xr, &labels).unwrap();

        let (m, mr) = (st.class_means().unwrap(), sr.class_means().unwrap());
        let (cm, cmr) = (st.centered_means().unwrap(), sr.centered_means().unwrap());
        prop_assert!(all_close(&row_angles_deg(&w, &m).unwrap(), &row_angles_deg(&wr, &mr).unwrap(), 1e-9));
        prop_assert!(all_close(&row_angles_deg(&w, &cm).unwrap(), &row_angles_deg(&wr, &cmr).unwrap(), 1e-9));
        prop_assert!(rel_close(nc1(&st).unwrap(), nc1(&sr).unwrap(), 1e-7));
        prop_assert!(rel_close(equinorm(&cm), equinorm(&cmr), 1e-9));
        prop_assert!(rel_close(equiangularity(&cm).unwrap(), equiangularity(&cmr).unwrap(), 1e-9));
        prop_assert!(rel_close(mean_abs_cos_plus(&cm).unwrap(), mean_abs_cos_plus(&cmr).unwrap(), 1e-9));
        prop_assert!(rel_close(polygon_gram_error(&w).unwrap(), polygon_gram_error(&wr).unwrap(), 1e-9));
        prop_assert!(rel_close(nc3(&w, &cm).unwrap(), nc3(&wr, &cmr).unwrap(), 1e-9));
        let (sy, syr) = (symmetry(&w).unwrap(), symmetry(&wr).unwrap());
        prop_assert!(rel_close(sy.coplanarity, syr.coplanarity, 1e-9));
        prop_assert!(rel_close(sy.mean_weight_norm, syr.mean_weight_norm, 1e-9));
        prop_assert!(rel_close(separation(&m).unwrap().min_deg, separation(&mr).unwrap().min_deg, 1e-9));

        let mut comp = Compactness::new(m.clone());
        comp.push_batch(&x, &labels).unwrap();
        let mut compr = Compactness::new(mr.clone());
        compr.push_batch(&xr, &labels).unwrap();
        prop_assert!(rel_close(comp.overall_mean_deg(), compr.overall_mean_deg(), 1e-9));

        // Softmax centre of a cosine head: rotates with the weights.
        let head = CosineHead::new(w.clone(), 8.0).unwrap();
        let headr = CosineHead::new(wr.clone(), 8.0).unwrap();
        let a = softmax_center(&head, 0, Some(m.row(0)), CenterOptions::default()).unwrap();
        let b = softmax_center(&headr, 0, Some(mr.row(0)), CenterOptions::default()).unwrap();
        prop_assert!((a.angle_to_weight_deg - b.angle_to_weight_deg).abs() < 1e-4,
            "{} vs {}", a.angle_to_weight_deg, b.angle_to_weight_deg);
    }

    #[test]
    fn merge_equals_one_pass(
        c in 1usize..5,
        d in 1usize..9,
        per in 1usize..40,
        cuts in proptest::collection::vec(0.0f64..1.0, 1..4),
        seed in any::<u64>(),
    ) {
        let (x, labels) = dataset(c, d, per, seed);
        let n = labels.len();
        let mut one = ClassStats::new(c, d);
        one.push_batch(&x, &labels).unwrap();
        let mut points: Vec<usize> = cuts.iter().map(|f| (f * n as f64) as usize).collect();
        points.push(0);
        points.push(n);
        points.sort_unstable();
        // Merge parts in reverse order so shifts differ from the one pass.
        let mut merged = ClassStats::new(c, d);
        for w in points.windows(2).rev() {
            let mut part = ClassStats::new(c, d);
            part.push_batch(&x[w[0] * d..w[1] * d], &labels[w[0]..w[1]]).unwrap();
            merged.merge(&part).unwrap();
        }
        prop_assert_eq!(merged.counts(), one.counts());
        prop_assert!(all_close(
            merged.within_class_cov().unwrap().as_slice(),
            one.within_class_cov().unwrap().as_slice(),
            1e-10,
        ));
        prop_assert!(all_close(merged.global_mean().unwrap().as_slice(), &one.global_mean().unwrap(), 1e-12));
        prop_assert!(rel_close(merged.mean_norm().unwrap(), one.mean_norm().unwrap(), 1e-12));
        if one.counts().iter().all(|&k| k > 0) {
            prop_assert!(all_close(
                merged.class_means().unwrap().as_slice(),
                one.class_means().unwrap().as_slice(),
                1e-12,
            ));
            prop_assert!(all_close(
                merged.between_class_cov().unwrap().as_slice(),
                one.between_class_cov().unwrap().as_slice(),
                1e-10,
            ));
        }
    }
}
