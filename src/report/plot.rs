//! Plots with plotters, written as PNG and SVG. Text uses the embedded
//! DejaVu Sans (no system font needed).

use crate::geometry::landscape::Landscape;
use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Register the embedded font once (plotters' `sans-serif`).
pub fn init_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

/// Something that draws itself on any plotters backend.
pub trait Figure {
    /// Draw on `area`.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draw `fig` into `stem.png` and `stem.svg` (each written to a temporary
/// name, then renamed).
pub fn png_and_svg(stem: &Path, size: (u32, u32), fig: &impl Figure) -> Result<()> {
    init_font();
    let png = stem.with_extension("png");
    let tmp = stem.with_extension("png.tmp.png");
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        fig.draw(&root)?;
        root.present().map_err(err)?;
    }
    std::fs::rename(&tmp, &png).map_err(|e| anyhow!("cannot write {}: {e}", png.display()))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        fig.draw(&root)?;
        root.present().map_err(err)?;
    }
    crate::atomic::write(&stem.with_extension("svg"), svg.as_bytes())?;
    Ok(())
}

/// A landscape figure (see [`landscape_polar`]).
pub struct LandscapeFigure<'a> {
    /// The grid.
    pub landscape: &'a Landscape,
    /// Title line.
    pub title: String,
    /// Label of the reference direction.
    pub reference: String,
}

impl Figure for LandscapeFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        landscape_polar(area, self.landscape, &self.title, &self.reference)
    }
}

/// Polar heat map of a softmax landscape: radius R, angle theta from `w_c`
/// (0° to the right, counter-clockwise towards the plane's second axis),
/// colour `p_c` (viridis, 0 to 1). Marks `w_c` and the reference direction.
pub fn landscape_polar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    l: &Landscape,
    title: &str,
    ref_label: &str,
) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (plot, bar) = area.split_horizontally(w.saturating_sub(90));
    plot.draw(&Text::new(
        title.to_string(),
        (10, 8),
        ("sans-serif", 18).into_font(),
    ))
    .map_err(err)?;
    let cx = (w.saturating_sub(90) / 2) as i32;
    let cy = (h / 2 + 12) as i32;
    let radius = (w.saturating_sub(90).min(h) as f64 / 2.0 - 40.0).max(10.0);
    let r_max = l.rs.last().copied().unwrap_or(1.0).max(1e-12);
    let to_px = |r: f64, t_deg: f64| {
        let t = t_deg.to_radians();
        let rr = r / r_max * radius;
        (
            cx + (rr * t.cos()).round() as i32,
            cy - (rr * t.sin()).round() as i32,
        )
    };
    // Cells between consecutive radii and angles (the grid's midpoints as edges).
    let edges = |v: &[f64], lo: f64| -> Vec<f64> {
        let mut e = vec![lo];
        for k in 1..v.len() {
            e.push((v[k - 1] + v[k]) / 2.0);
        }
        e.push(*v.last().unwrap_or(&lo));
        e
    };
    let r_edges = edges(&l.rs, 0.0);
    let nt = l.thetas_deg.len();
    let step = if nt > 1 {
        l.thetas_deg[1] - l.thetas_deg[0]
    } else {
        360.0
    };
    for (i, row) in l.p.iter().enumerate() {
        for (j, &p) in row.iter().enumerate() {
            let t = l.thetas_deg[j];
            let (t0, t1) = (t - step / 2.0, t + step / 2.0);
            let (r0, r1) = (r_edges[i], r_edges[i + 1]);
            let color = ViridisRGB::get_color_normalized(p as f32, 0.0, 1.0);
            let mut pts = vec![];
            for k in 0..=3 {
                pts.push(to_px(r1, t0 + (t1 - t0) * k as f64 / 3.0));
            }
            for k in (0..=3).rev() {
                pts.push(to_px(r0, t0 + (t1 - t0) * k as f64 / 3.0));
            }
            plot.draw(&Polygon::new(pts, color.filled())).map_err(err)?;
        }
    }
    let style = ShapeStyle::from(&WHITE).stroke_width(2);
    plot.draw(&PathElement::new(
        vec![to_px(0.0, 0.0), to_px(r_max, 0.0)],
        style,
    ))
    .map_err(err)?;
    plot.draw(&Text::new(
        "w_c".to_string(),
        to_px(r_max * 1.04, 0.0),
        ("sans-serif", 14).into_font(),
    ))
    .map_err(err)?;
    let red = ShapeStyle::from(&RED).stroke_width(2);
    plot.draw(&PathElement::new(
        vec![to_px(0.0, 0.0), to_px(r_max, l.x_theta_deg)],
        red,
    ))
    .map_err(err)?;
    plot.draw(&Text::new(
        ref_label.to_string(),
        to_px(r_max * 1.04, l.x_theta_deg),
        ("sans-serif", 14).into_font().color(&RED),
    ))
    .map_err(err)?;
    plot.draw(&Text::new(
        format!("R = 0 .. {r_max:.3}"),
        (10, h as i32 - 22),
        ("sans-serif", 14).into_font(),
    ))
    .map_err(err)?;
    // Colour bar.
    let top = 40i32;
    let bottom = h as i32 - 40;
    for y in top..bottom {
        let p = 1.0 - (y - top) as f32 / (bottom - top) as f32;
        let c = ViridisRGB::get_color_normalized(p, 0.0, 1.0);
        bar.draw(&Rectangle::new([(20, y), (40, y + 1)], c.filled()))
            .map_err(err)?;
    }
    for (p, y) in [(1.0, top), (0.5, (top + bottom) / 2), (0.0, bottom)] {
        bar.draw(&Text::new(
            format!("{p:.1}"),
            (45, y - 7),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(err)?;
    }
    bar.draw(&Text::new(
        "p_c".to_string(),
        (18, top - 25),
        ("sans-serif", 14).into_font(),
    ))
    .map_err(err)?;
    Ok(())
}
