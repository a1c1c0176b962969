//! The parameter machinery of the heads: each head file describes itself
//! ([`HeadDesc`]: name, formula, parameters with defaults and checks, its
//! own extra check), and [`resolve`] turns the parameters a user gave into
//! checked values with the defaults filled in.

use std::collections::{BTreeMap, BTreeSet};

/// A head's parameters or weights are not what it takes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeadError {
    /// A geometric construction failed (a layout, a scale).
    #[error(transparent)]
    Geometry(#[from] crate::geometry::GeometryError),
    /// A parameter the head does not have.
    #[error("head {head} has no parameter {name:?} (it takes: {known})")]
    UnknownParam {
        /// The head.
        head: &'static str,
        /// The parameter given.
        name: String,
        /// The parameters it takes.
        known: String,
    },
    /// A value outside what the parameter accepts.
    #[error("head parameter {name} = {value}: expected {expected}")]
    Invalid {
        /// The parameter.
        name: String,
        /// Its value.
        value: f64,
        /// What it accepts.
        expected: String,
    },
    /// Anything else (shapes, contradicting parameters, given weights).
    #[error("{0}")]
    Other(String),
}

/// What a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// Any finite number (the head's own check may say more).
    Finite,
    /// 0 or 1 (also `true`/`false` on the command line and in TOML).
    Flag,
    /// `lo <(=) v < hi`.
    Range {
        /// Lower bound.
        lo: f64,
        /// Upper bound (exclusive).
        hi: f64,
        /// Whether `lo` itself is excluded.
        lo_open: bool,
        /// In words, for the error.
        what: &'static str,
    },
}

impl Check {
    /// `[lo, hi)`.
    pub const fn closed_open(lo: f64, hi: f64, what: &'static str) -> Self {
        Self::Range {
            lo,
            hi,
            lo_open: false,
            what,
        }
    }

    /// `(lo, hi)`.
    pub const fn open(lo: f64, hi: f64, what: &'static str) -> Self {
        Self::Range {
            lo,
            hi,
            lo_open: true,
            what,
        }
    }

    /// `>= 0`.
    pub const NON_NEGATIVE: Check = Check::closed_open(0.0, f64::INFINITY, "a number >= 0");
}

/// One parameter of a head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamDef {
    /// Its name (`--head-param NAME=VALUE`).
    pub name: &'static str,
    /// Its default (angles in radians).
    pub default: f64,
    /// What it means.
    pub doc: &'static str,
    /// What it accepts.
    pub check: Check,
}

/// The logit scale of the cosine heads, default 16.
pub const SCALE_16: ParamDef = scale(16.0);

/// The logit scale with this default.
pub const fn scale(default: f64) -> ParamDef {
    ParamDef {
        name: "s",
        default,
        doc: "logit scale",
        check: Check::open(0.0, 1e4, "a scale in (0, 10000)"),
    }
}

/// Whether the scale is learned.
pub const LEARN_SCALE: ParamDef = ParamDef {
    name: "learn_scale",
    default: 0.0,
    doc: "1: learn s (initialised at s)",
    check: Check::Flag,
};

/// What a head file says about its head.
#[derive(Debug, Clone, Copy)]
pub struct HeadDesc {
    /// The CLI name.
    pub name: &'static str,
    /// Other names `--head` accepts.
    pub aliases: &'static [&'static str],
    /// One line on what it computes.
    pub formula: &'static str,
    /// Its parameters, with defaults (following the reference libraries,
    /// field notes §3).
    pub params: &'static [ParamDef],
    /// Its logits see only `w / |w|` (a cosine head): what the report
    /// row-normalises before it measures the weights.
    pub cosine: bool,
    /// Its class weights are learned (false: a fixed layout).
    pub learned: bool,
    /// Checks across parameters (run after each parameter's own check);
    /// may set derived values (SphereFace: a given `lambda` turns
    /// annealing off).
    pub check: fn(&mut Params) -> Result<(), HeadError>,
}

/// No check beyond the parameters' own.
pub fn no_check(_: &mut Params) -> Result<(), HeadError> {
    Ok(())
}

/// A head's parameters, checked, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    values: BTreeMap<String, f64>,
    given: BTreeSet<String>,
}

impl Params {
    /// The value of a declared parameter. Panics on a name the head does
    /// not declare (a bug in the head file, which every head's test catches).
    pub fn get(&self, name: &str) -> f64 {
        match self.values.get(name) {
            Some(&v) => v,
            None => panic!("head parameter {name:?} is not declared by the head"),
        }
    }

    /// A flag parameter (checked to be 0 or 1).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name) == 1.0
    }

    /// Whether the user gave this parameter (not its default).
    pub fn given(&self, name: &str) -> bool {
        self.given.contains(name)
    }

    /// Set a value (a head's check deriving one parameter from another).
    pub fn set(&mut self, name: &str, value: f64) {
        self.values.insert(name.to_string(), value);
    }

    /// Every value, by name.
    pub fn values(&self) -> &BTreeMap<String, f64> {
        &self.values
    }
}

impl std::ops::Index<&str> for Params {
    type Output = f64;
    fn index(&self, name: &str) -> &f64 {
        match self.values.get(name) {
            Some(v) => v,
            None => panic!("head parameter {name:?} is not declared by the head"),
        }
    }
}

/// Check `given` against the head `desc`: unknown names, non-finite values,
/// each parameter's [`Check`], then the head's own check.
pub fn resolve(desc: &HeadDesc, given: &BTreeMap<String, f64>) -> Result<Params, HeadError> {
    let mut p = Params {
        values: desc
            .params
            .iter()
            .map(|d| (d.name.to_string(), d.default))
            .collect(),
        given: given.keys().cloned().collect(),
    };
    for (k, &v) in given {
        if !p.values.contains_key(k) {
            let names: Vec<&str> = desc.params.iter().map(|d| d.name).collect();
            return Err(HeadError::UnknownParam {
                head: desc.name,
                name: k.clone(),
                known: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
        if !v.is_finite() {
            return Err(HeadError::Other(format!(
                "head parameter {k} = {v} must be finite"
            )));
        }
        p.values.insert(k.clone(), v);
    }
    // The order of the checks (and so which error a bad input gets): the
    // scale, the flags, the head's own check (SphereFace's lambda/anneal
    // contradiction and m), then the other ranges.
    let order = |d: &ParamDef| match d.check {
        _ if d.name == "s" => 0,
        Check::Flag => 1,
        _ => 3,
    };
    let mut defs: Vec<&ParamDef> = desc.params.iter().collect();
    defs.sort_by_key(|d| order(d));
    let mut checked_head = false;
    for d in defs {
        if order(d) == 3 && !checked_head {
            (desc.check)(&mut p)?;
            checked_head = true;
        }
        let v = p.get(d.name);
        let expected = match d.check {
            Check::Finite => None,
            Check::Flag => (v != 0.0 && v != 1.0).then(|| "0 or 1".to_string()),
            Check::Range {
                lo,
                hi,
                lo_open,
                what,
            } => {
                let ok = if lo_open { v > lo } else { v >= lo } && v < hi;
                (!ok).then(|| what.to_string())
            }
        };
        if let Some(expected) = expected {
            return Err(HeadError::Invalid {
                name: d.name.into(),
                value: v,
                expected,
            });
        }
    }
    if !checked_head {
        (desc.check)(&mut p)?;
    }
    Ok(p)
}
