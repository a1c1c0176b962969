//! `symfeat landscape`: the softmax output of one class over the feature
//! norm R and the angle theta in a plane through `w_c` (field notes §5), as
//! CSV and a polar plot (PNG and SVG).

use crate::geometry::Matrix;
use crate::geometry::angles::angle_deg;
use crate::npy::{MatrixReader, read_vector};
use crate::report::landscape::{LandscapeGrid, class_landscape, nearest_weight};
use crate::report::plot::{LandscapeFigure, png_and_svg};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `symfeat landscape`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct LandscapeArgs {
    /// Class weights, C x D float NPY.
    #[arg(long)]
    weights: PathBuf,
    /// The class c whose probability p_c is mapped.
    #[arg(long)]
    class: usize,
    /// The plane is spanned by w_c and the weight of this class (default: the
    /// class whose weight is closest in angle to w_c).
    #[arg(long)]
    towards: Option<usize>,
    /// Scale s of a cosine head; omit for a linear head.
    #[arg(long, allow_hyphen_values = true)]
    scale: Option<f64>,
    /// Bias, C floats (linear head).
    #[arg(long)]
    bias: Option<PathBuf>,
    /// Largest feature norm R of the grid (default: 3 times the mean weight norm for
    /// linear heads, 1 for cosine heads, whose p_c does not depend on R).
    #[arg(long, allow_hyphen_values = true)]
    r_max: Option<f64>,
    /// Number of radii.
    #[arg(long, default_value_t = 40)]
    radii: usize,
    /// Number of angles over 360 degrees.
    #[arg(long, default_value_t = 180)]
    angles: usize,
    /// Project every weight onto the plane first (the authors' 2-D view).
    #[arg(long)]
    projected: bool,
    /// Output directory (landscape.csv, landscape.png, landscape.svg).
    #[arg(long)]
    out: PathBuf,
}

pub(super) fn landscape(a: LandscapeArgs) -> Result<ExitCode> {
    let (w, c, d) = MatrixReader::open(&a.weights, "class weights")?.read_all()?;
    if c < 2 {
        bail!("{}: need at least 2 classes, got {c}", a.weights.display());
    }
    if a.class >= c {
        bail!(
            "--class {}: expected 0..{c} (C from {})",
            a.class,
            a.weights.display()
        );
    }
    if a.radii < 1 || a.angles < 4 {
        bail!("--radii must be >= 1 and --angles >= 4");
    }
    if let Some(r) = a.r_max
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--r-max {r}: expected a finite number > 0");
    }
    let weights = Matrix::new(c, d, w)?;
    if weights.row_norms()[a.class] == 0.0 {
        bail!("{}: w_{} is zero", a.weights.display(), a.class);
    }
    if let Some(k) = a.towards
        && (k >= c || k == a.class)
    {
        bail!("--towards {k}: expected another class in 0..{c}");
    }
    let towards = a
        .towards
        .unwrap_or_else(|| nearest_weight(&weights, a.class));
    let angle = angle_deg(weights.row(a.class), weights.row(towards));
    if !(angle > 1e-9 && angle < 180.0 - 1e-9) {
        bail!(
            "{}: w_{} and w_{towards} span no plane ({}); pass --towards with a class whose \
             weight is neither zero nor parallel to w_{}",
            a.weights.display(),
            a.class,
            if angle.is_nan() {
                format!("w_{towards} is zero")
            } else {
                "they are parallel".to_string()
            },
            a.class
        );
    }
    let bias = a
        .bias
        .as_ref()
        .map(|p| read_vector(p, "bias"))
        .transpose()?;
    if let (Some(p), Some(b)) = (&a.bias, &bias)
        && b.len() != c
    {
        bail!(
            "{} (--bias): {} values, expected C = {c} (rows of {})",
            p.display(),
            b.len(),
            a.weights.display()
        );
    }
    if let Some(s) = a.scale
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--scale {s}: expected a finite number > 0");
    }
    let grid = LandscapeGrid {
        r_max: a.r_max,
        radii: a.radii,
        angles: a.angles,
        projected: a.projected,
    };
    let (l, towards) = class_landscape(
        &weights,
        bias.as_deref(),
        a.scale,
        a.class,
        Some(towards),
        grid,
    )
    .with_context(|| {
        format!(
            "{}: landscape of class {} in the plane of w_{} and w_{towards}",
            a.weights.display(),
            a.class,
            a.class
        )
    })?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| anyhow::anyhow!("cannot create output directory {}: {e}", a.out.display()))?;
    let mut csv = String::from("r,theta_deg,p\n");
    for (i, r) in l.rs.iter().enumerate() {
        for (j, t) in l.thetas_deg.iter().enumerate() {
            let _ = writeln!(csv, "{r},{t},{}", l.p[i][j]);
        }
    }
    crate::atomic::write(&a.out.join("landscape.csv"), csv.as_bytes())?;
    let fig = LandscapeFigure {
        landscape: &l,
        title: format!(
            "p_{} over (R, theta), plane of w_{} and w_{}",
            a.class, a.class, towards
        ),
        reference: format!("w_{towards}"),
    };
    png_and_svg(&a.out.join("landscape"), (640, 560), &fig)?;
    eprintln!(
        "wrote {}/landscape.{{csv,png,svg}}: p_{} in [{:.4}, {:.4}]",
        a.out.display(),
        a.class,
        l.p.iter().flatten().cloned().fold(f64::INFINITY, f64::min),
        l.p.iter()
            .flatten()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max)
    );
    Ok(ExitCode::SUCCESS)
}
