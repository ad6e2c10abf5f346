//! The codec executors decode plans with: the planner's, plus any executor operators.

use std::sync::Arc;

use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use kiln_planner::KilnPhysicalCodec;

/// The extension codec both the driver and executors use for Kiln plans.
pub fn executor_codec() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(KilnPhysicalCodec)
}
