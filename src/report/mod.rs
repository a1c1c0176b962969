//! Figures (PNG and SVG through plotters) and, later, the HTML report.

pub mod plot;
