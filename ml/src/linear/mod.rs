//! PLACEHOLDER: replaced by the real module.

use serde::{Deserialize, Serialize};

use crate::data::CachedPartition;
use crate::error::{MlError, Result};

/// PLACEHOLDER
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LinearKernel {}

/// PLACEHOLDER
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LinearPartial {}

impl LinearKernel {
    /// PLACEHOLDER
    pub fn run(&self, _partition: &CachedPartition) -> Result<LinearPartial> {
        match *self {}
    }
}

impl LinearPartial {
    /// PLACEHOLDER
    pub fn merge(self, _other: Self) -> Result<Self> {
        Err(MlError::Internal("placeholder".into()))
    }
}
