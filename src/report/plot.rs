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

/// A short axis label for `v`.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// One line with a band: `x`, mean `y`, and `lo..hi` around it.
pub struct Band {
    /// Legend label.
    pub label: String,
    /// Points `(x, mean, lo, hi)`.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Lines with min-max bands over seeds, one colour per series.
pub struct CurvesFigure {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Series.
    pub series: Vec<Band>,
}

/// Colour of series `i`.
pub fn palette(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

impl Figure for CurvesFigure {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, _, lo, hi) in pts.filter(|p| p.2.is_finite() && p.3.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(lo);
            y1 = y1.max(hi);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(err)?;
        let xticks = ((x1 - x0).round() as usize + 1).clamp(2, 12);
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(xticks)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = palette(i);
            let ok: Vec<_> = s
                .points
                .iter()
                .filter(|p| p.1.is_finite())
                .copied()
                .collect();
            if ok.len() > 1 {
                let mut band: Vec<(f64, f64)> = ok.iter().map(|p| (p.0, p.3)).collect();
                band.extend(ok.iter().rev().map(|p| (p.0, p.2)));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        band,
                        color.mix(0.15).filled(),
                    )))
                    .map_err(err)?;
            }
            chart
                .draw_series(LineSeries::new(
                    ok.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    ok.iter()
                        .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// 2-D features coloured by class, class weights drawn as arrows from 0.
pub struct ScatterFigure {
    /// Title.
    pub title: String,
    /// Points `(x, y, class)`.
    pub points: Vec<(f64, f64, usize)>,
    /// Class weights `(x, y)`.
    pub weights: Vec<(f64, f64)>,
}

impl Figure for ScatterFigure {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let mut m = 1e-9f64;
        for p in &self.points {
            m = m.max(p.0.abs()).max(p.1.abs());
        }
        // weights are rescaled to the features' extent to be visible
        let wm = self
            .weights
            .iter()
            .map(|w| w.0.hypot(w.1))
            .fold(1e-12, f64::max);
        let ws = 0.9 * m / wm;
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(-m * 1.05..m * 1.05, -m * 1.05..m * 1.05)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                self.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 2, palette(p.2).mix(0.5).filled())),
            )
            .map_err(err)?;
        for (c, w) in self.weights.iter().enumerate() {
            let style = ShapeStyle::from(&BLACK).stroke_width(3);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, 0.0), (w.0 * ws, w.1 * ws)],
                    style,
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Circle::new(
                    (w.0 * ws, w.1 * ws),
                    5,
                    palette(c).filled(),
                )))
                .map_err(err)?;
        }
        Ok(())
    }
}
