//! Figures (PNG and SVG through plotters) and the study report (HTML,
//! JSON, Markdown).

pub mod build;
pub mod claims;
pub mod html;
pub mod landscape;
pub mod plot;

pub use build::{Summary, build_report};
