//! Encoding of physical plan fragments for the trip from driver to executor.
//!
//! Plans are encoded with `datafusion-proto`; Kiln's own operators go through
//! [`KilnPhysicalCodec`]. Crates above the planner that add operators of their own wrap this
//! codec in theirs (the executor's codec does).

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::memory::LazyMemoryExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf;
use prost::Message;

use crate::error::Result;
use crate::functions;
use crate::predict;
use crate::shuffle_read::{ReadMode, UnresolvedShuffleExec};

/// Wire form of [`UnresolvedShuffleExec`].
#[derive(Clone, PartialEq, Message)]
struct ShuffleReadNode {
    #[prost(uint32, tag = "1")]
    stage_id: u32,
    #[prost(uint32, tag = "2")]
    mode: u32,
    #[prost(uint64, tag = "3")]
    partitions: u64,
    #[prost(message, optional, tag = "4")]
    schema: Option<protobuf::Schema>,
}

/// The error for an operator no codec knows.
pub fn not_shippable(node: &dyn ExecutionPlan) -> DataFusionError {
    DataFusionError::NotImplemented(format!(
        "Kiln cannot ship operator {} to executors",
        node.name()
    ))
}

/// Decodes a schema field of an operator's message (`what` names the operator in errors).
///
/// # Errors
/// A missing or undecodable schema.
pub fn decode_schema(schema: Option<&protobuf::Schema>, what: &str) -> DfResult<SchemaRef> {
    let schema =
        schema.ok_or_else(|| DataFusionError::Internal(format!("{what} without schema")))?;
    Ok(Arc::new(Schema::try_from(schema)?))
}

/// The extension codec for the planner's operators and Kiln's scalar functions.
#[derive(Debug, Default, Clone, Copy)]
pub struct KilnPhysicalCodec;

impl PhysicalExtensionCodec for KilnPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !inputs.is_empty() {
            return Err(DataFusionError::Internal(
                "shuffle read node has no inputs".to_string(),
            ));
        }
        let node = ShuffleReadNode::decode(buf)
            .map_err(|e| DataFusionError::Internal(format!("bad shuffle read node: {e}")))?;
        let mode = ReadMode::from_u32(node.mode).ok_or_else(|| {
            DataFusionError::Internal(format!("unknown shuffle read mode {}", node.mode))
        })?;
        let schema = decode_schema(node.schema.as_ref(), "shuffle read")?;
        let partitions = usize::try_from(node.partitions)
            .map_err(|e| DataFusionError::Internal(format!("partition count: {e}")))?;
        Ok(Arc::new(UnresolvedShuffleExec::new(
            node.stage_id,
            mode,
            schema,
            partitions,
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let Some(read) = node.downcast_ref::<UnresolvedShuffleExec>() else {
            return Err(not_shippable(node.as_ref()));
        };
        let schema = protobuf::Schema::try_from(read.schema().as_ref())?;
        let msg = ShuffleReadNode {
            stage_id: read.stage_id(),
            mode: read.mode().as_u32(),
            partitions: read.partition_count() as u64,
            schema: Some(schema),
        };
        msg.encode(buf)
            .map_err(|e| DataFusionError::Internal(format!("encode shuffle read: {e}")))
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        if let Some(udf) = predict::decode_predict(name, buf)? {
            return Ok(Arc::new(udf));
        }
        functions::kiln_udf(name).ok_or_else(|| {
            DataFusionError::NotImplemented(format!("unknown scalar function {name}"))
        })
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        predict::encode_predict(node, buf)?;
        Ok(())
    }
}

/// Encodes a plan fragment to bytes.
///
/// # Errors
/// If the plan holds an operator that neither `datafusion-proto` nor `codec` can encode.
pub fn plan_to_bytes(
    plan: Arc<dyn ExecutionPlan>,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<Vec<u8>> {
    let plan = explicit_generator_projections(plan)?;
    Ok(physical_plan_to_bytes_with_extension_codec(plan, codec)?.to_vec())
}

/// `plan` with every projected [`LazyMemoryExec`] (`generate_series`, `range`) replaced by the
/// unprojected generator under a [`ProjectionExec`].
///
/// `datafusion-proto` ships a `LazyMemoryExec` with its projected schema but without the
/// projection, so the executor's copy would produce every generated column under a schema
/// that lacks some (`SELECT count(*) FROM generate_series(...)` projects none) and fail.
fn explicit_generator_projections(
    plan: Arc<dyn ExecutionPlan>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(lazy) = node.downcast_ref::<LazyMemoryExec>() else {
            return Ok(Transformed::no(node));
        };
        let generators = lazy.generators().clone();
        let Some(first) = generators.first() else {
            return Ok(Transformed::no(node));
        };
        // The generated columns: those of the first batch of a fresh copy of a generator.
        // A generator that makes no batch has no columns to disagree about.
        let fresh = first.read().reset_state();
        let Some(batch) = fresh.write().generate_next_batch()? else {
            return Ok(Transformed::no(node));
        };
        let generated = batch.schema();
        let projected = lazy.schema();
        if generated.fields().len() == projected.fields().len() {
            return Ok(Transformed::no(node));
        }
        let exprs = projected
            .fields()
            .iter()
            .map(|f| {
                let i = generated.index_of(f.name())?;
                let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(f.name(), i));
                Ok((column, f.name().clone()))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let mut source = LazyMemoryExec::try_new(generated, generators)?;
        source.try_set_partitioning(lazy.properties().partitioning.clone())?;
        let projection = ProjectionExec::try_new(exprs, Arc::new(source))?;
        Ok(Transformed::yes(
            Arc::new(projection) as Arc<dyn ExecutionPlan>
        ))
    })
    .map(|t| t.data)
}

/// Decodes a plan fragment. Functions are looked up in `ctx` first, then in `codec`.
///
/// # Errors
/// If the bytes are not a plan, or name an operator or function this process does not know.
pub fn plan_from_bytes(
    bytes: &[u8],
    ctx: &TaskContext,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(physical_plan_from_bytes_with_extension_codec(
        bytes, ctx, codec,
    )?)
}
