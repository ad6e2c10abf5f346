//! PLACEHOLDER: replaced by the real module.

use serde::{Deserialize, Serialize};

use crate::data::CachedPartition;
use crate::error::{MlError, Result};

/// PLACEHOLDER
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StatsKernel {}

/// PLACEHOLDER
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StatsPartial {}

impl StatsKernel {
    /// PLACEHOLDER
    pub fn run(&self, _partition: &CachedPartition) -> Result<StatsPartial> {
        match *self {}
    }
}

impl StatsPartial {
    /// PLACEHOLDER
    pub fn merge(self, _other: Self) -> Result<Self> {
        Err(MlError::Internal("placeholder".into()))
    }
}
