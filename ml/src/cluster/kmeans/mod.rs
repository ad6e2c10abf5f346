//! PLACEHOLDER: replaced by the real module.

use serde::{Deserialize, Serialize};

use crate::data::CachedPartition;
use crate::error::{MlError, Result};

/// PLACEHOLDER
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KMeansKernel {}

/// PLACEHOLDER
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KMeansPartial {}

impl KMeansKernel {
    /// PLACEHOLDER
    pub fn run(&self, _partition: &CachedPartition) -> Result<KMeansPartial> {
        match *self {}
    }
}

impl KMeansPartial {
    /// PLACEHOLDER
    pub fn merge(self, _other: Self) -> Result<Self> {
        Err(MlError::Internal("placeholder".into()))
    }
}
