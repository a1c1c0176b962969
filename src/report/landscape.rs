//! The softmax landscape of one class of a weight matrix, on a default grid
//! (shared by `symfeat landscape` and the report).

use crate::geometry::landscape::{Landscape, PlaneWeights, softmax_landscape};
use crate::geometry::{self, Matrix};
use anyhow::{Result, anyhow, bail};

/// Grid and plane choices.
#[derive(Debug, Clone, Copy)]
pub struct LandscapeGrid {
    /// Largest R (default: 1 for cosine heads, 3x the mean weight norm otherwise).
    pub r_max: Option<f64>,
    /// Number of radii.
    pub radii: usize,
    /// Number of angles over 360 degrees.
    pub angles: usize,
    /// Project all weights onto the plane (the authors' 2-D view).
    pub projected: bool,
}

impl Default for LandscapeGrid {
    fn default() -> Self {
        Self {
            r_max: None,
            radii: 40,
            angles: 180,
            projected: false,
        }
    }
}

/// The class whose weight is closest in angle to `w_class`.
pub fn nearest_weight(weights: &Matrix, class: usize) -> usize {
    let c = weights.rows();
    (0..c)
        .filter(|&k| k != class)
        .min_by(|&i, &j| {
            let ai = geometry::angles::angle_deg(weights.row(class), weights.row(i));
            let aj = geometry::angles::angle_deg(weights.row(class), weights.row(j));
            ai.total_cmp(&aj)
        })
        .unwrap_or((class + 1) % c.max(1))
}

/// `p_class` over (R, theta) in the plane of `w_class` and `w_towards`
/// (default: the nearest weight); returns the grid and the class used.
pub fn class_landscape(
    weights: &Matrix,
    bias: Option<&[f64]>,
    scale: Option<f64>,
    class: usize,
    towards: Option<usize>,
    grid: LandscapeGrid,
) -> Result<(Landscape, usize)> {
    let c = weights.rows();
    if class >= c {
        bail!("class {class}: expected 0..{c}");
    }
    let towards = towards.unwrap_or_else(|| nearest_weight(weights, class));
    let head = geometry::build_head(weights, bias, scale)?;
    let norms = weights.row_norms();
    let r_max = grid.r_max.unwrap_or(if scale.is_some() {
        1.0
    } else {
        3.0 * norms.iter().sum::<f64>() / c as f64
    });
    let rs: Vec<f64> = (1..=grid.radii)
        .map(|i| r_max * i as f64 / grid.radii as f64)
        .collect();
    let thetas: Vec<f64> = (0..grid.angles)
        .map(|i| 360.0 * i as f64 / grid.angles as f64)
        .collect();
    let mode = if grid.projected {
        PlaneWeights::Projected
    } else {
        PlaneWeights::Exact
    };
    let l = softmax_landscape(
        head.as_ref(),
        class,
        weights.row(towards),
        &rs,
        &thetas,
        mode,
    )
    .map_err(|e| anyhow!("landscape: {e}"))?;
    Ok((l, towards))
}
