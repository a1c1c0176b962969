//! A head choice with its parameters, as the configuration holds it.

use super::params::{self, HeadError, Params};
use super::{Head, HeadKind};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A head choice with its parameters (`--head NAME --head-param k=v`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadSpec {
    /// Which head.
    pub kind: HeadKind,
    /// Parameter values by name; missing ones take the defaults.
    pub params: BTreeMap<String, f64>,
}

impl HeadSpec {
    /// Check the parameter names and values (see [`params::resolve`]).
    pub fn resolve(&self) -> Result<Params, HeadError> {
        params::resolve(self.kind.desc(), &self.params)
    }

    /// Build the head for `d` features and `c` classes.
    pub fn init<B: Backend>(
        &self,
        d: usize,
        c: usize,
        device: &B::Device,
    ) -> Result<Head<B>, HeadError> {
        let p = self.resolve()?;
        if c < 2 {
            return Err(HeadError::Other(format!(
                "a head needs at least 2 classes, got {c}"
            )));
        }
        self.kind.build(&p, d, c, device)
    }

    /// The center-loss settings `(weight, lr)` of this head, if it has the
    /// center loss.
    pub fn center(&self) -> Result<Option<(f64, f64)>, HeadError> {
        if self.kind != HeadKind::Center {
            return Ok(None);
        }
        let p = self.resolve()?;
        Ok(Some((p["center_weight"], p["center_lr"])))
    }
}
