//! The study report: the runs read back (`run.rs`), what the report says
//! (`summary.rs`, with the decision rules of `claims.rs`), and how it is
//! written (`build.rs`: figures, `summary.json`, `summary.md`; `html.rs`:
//! the self-contained `report.html`; `plot.rs`, `landscape.rs`: figures).

pub mod build;
pub mod claims;
pub mod html;
pub mod landscape;
pub mod plot;
pub mod run;
pub mod summary;

pub use build::build_report;
pub use summary::Summary;
