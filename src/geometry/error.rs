//! Errors of the geometry module.
//!
//! Every fallible geometry function returns [`Result`]; the variants say which
//! input was wrong and what was expected, so callers (CLI, probe) can report
//! them without re-checking (style guide §5, linfa `errors.rs`).

/// Errors raised by the pure-math geometry functions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    /// A length or shape does not match.
    #[error("dimension mismatch in {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Which argument or quantity.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Size received.
        got: usize,
    },
    /// A class has no samples where a per-class quantity is needed.
    #[error("class {class} has no samples")]
    EmptyClass {
        /// The class index.
        class: usize,
    },
    /// A label is not below the number of classes.
    #[error("label {label} out of range for {classes} classes")]
    LabelOutOfRange {
        /// The label received.
        label: usize,
        /// Number of classes C.
        classes: usize,
    },
    /// NaN or infinity found in an input.
    #[error("non-finite value in {what}")]
    NonFinite {
        /// Which argument.
        what: &'static str,
    },
    /// A matrix or vector set has a lower rank than the computation needs
    /// (zero vector, parallel vectors, all class means equal, ...).
    #[error("rank too low in {what}: need {needed}, got {got}")]
    RankTooLow {
        /// Which quantity.
        what: &'static str,
        /// Rank needed.
        needed: usize,
        /// Numerical rank found.
        got: usize,
    },
    /// A parameter is outside its allowed range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is allowed.
        reason: String,
    },
}

/// Result type of the geometry module.
pub type Result<T> = std::result::Result<T, GeometryError>;

/// Checks `got == expected`, else a [`GeometryError::DimensionMismatch`].
pub(crate) fn check_dim(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(GeometryError::DimensionMismatch {
            what,
            expected,
            got,
        })
    }
}

/// Checks that every value is finite, else [`GeometryError::NonFinite`].
pub(crate) fn check_finite(what: &'static str, values: &[f64]) -> Result<()> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(GeometryError::NonFinite { what })
    }
}
