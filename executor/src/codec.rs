//! The codec for Kiln plans: the planner's operators, plus the executor's own sources.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf;
use kiln_planner::codec::{decode_schema, not_shippable};
use kiln_planner::KilnPhysicalCodec;
use prost::Message;

use crate::source::{CachedScanExec, CsvFile, CsvMode, CsvScanExec, CsvScanOptions};

/// The extension codec both the driver and executors use for Kiln plans.
pub fn executor_codec() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(ExecutorCodec)
}

/// Tags the operator family in the first byte, then delegates. Functions are left to the
/// function registry (an empty encoding), so built-in and Kiln functions resolve by name.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExecutorCodec;

const TAG_PLANNER: u8 = 0;
const TAG_SOURCE: u8 = 1;
const TAG_CACHED: u8 = 2;

impl PhysicalExtensionCodec for ExecutorCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match buf.split_first() {
            Some((&TAG_PLANNER, rest)) => {
                KilnPhysicalCodec.try_decode(rest, inputs, ctx, proto_converter)
            }
            Some((&TAG_SOURCE, rest)) => SourceCodec.try_decode(rest, inputs, ctx, proto_converter),
            Some((&TAG_CACHED, rest)) => decode_cached_scan(rest),
            _ => Err(internal("unknown Kiln operator tag")),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        if let Some(scan) = node.downcast_ref::<CachedScanExec>() {
            buf.push(TAG_CACHED);
            encode_cached_scan(scan, buf)
        } else if node.downcast_ref::<CsvScanExec>().is_some() {
            buf.push(TAG_SOURCE);
            SourceCodec.try_encode(node, buf, proto_converter)
        } else {
            buf.push(TAG_PLANNER);
            KilnPhysicalCodec.try_encode(node, buf, proto_converter)
        }
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        KilnPhysicalCodec.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        KilnPhysicalCodec.try_encode_udf(node, buf)
    }
}

#[derive(Clone, PartialEq, Message)]
struct CsvScanNode {
    #[prost(string, tag = "1")]
    store_url: String,
    #[prost(message, repeated, tag = "2")]
    partitions: Vec<CsvPartition>,
    #[prost(message, optional, tag = "3")]
    file_schema: Option<protobuf::Schema>,
    #[prost(bool, tag = "4")]
    has_header: bool,
    #[prost(uint32, tag = "5")]
    delimiter: u32,
    #[prost(uint32, tag = "6")]
    mode: u32,
    #[prost(string, tag = "7")]
    corrupt_column: String,
    #[prost(bool, tag = "8")]
    projected: bool,
    #[prost(uint64, repeated, tag = "9")]
    projection: Vec<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct CsvPartition {
    #[prost(string, repeated, tag = "1")]
    objects: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    displays: Vec<String>,
}

/// Wire form of [`CachedScanExec`].
#[derive(Clone, PartialEq, Message)]
struct CachedScanNode {
    #[prost(string, tag = "1")]
    dataset: String,
    #[prost(string, tag = "2")]
    cache_root: String,
    #[prost(string, repeated, tag = "3")]
    objects: Vec<String>,
    #[prost(message, optional, tag = "4")]
    schema: Option<protobuf::Schema>,
    #[prost(bool, tag = "5")]
    projected: bool,
    #[prost(uint64, repeated, tag = "6")]
    projection: Vec<u64>,
}

fn encode_cached_scan(scan: &CachedScanExec, buf: &mut Vec<u8>) -> DfResult<()> {
    CachedScanNode {
        dataset: scan.dataset().to_string(),
        cache_root: scan.cache_root().to_string(),
        objects: scan.objects().to_vec(),
        schema: Some(protobuf::Schema::try_from(scan.table_schema().as_ref())?),
        projected: scan.projection().is_some(),
        projection: scan
            .projection()
            .unwrap_or_default()
            .iter()
            .map(|i| *i as u64)
            .collect(),
    }
    .encode(buf)
    .map_err(|e| internal(format!("encode cached scan: {e}")))
}

fn decode_cached_scan(buf: &[u8]) -> DfResult<Arc<dyn ExecutionPlan>> {
    let node =
        CachedScanNode::decode(buf).map_err(|e| internal(format!("bad cached scan: {e}")))?;
    let schema = decode_schema(node.schema.as_ref(), "cached scan")?;
    let projection = node
        .projected
        .then(|| node.projection.iter().map(|i| *i as usize).collect());
    Ok(Arc::new(CachedScanExec::try_new(
        node.dataset,
        node.cache_root,
        node.objects,
        schema,
        projection,
    )?))
}

fn internal(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(msg.into())
}

/// Encodes the executor's own source operators.
#[derive(Debug, Default, Clone, Copy)]
pub struct SourceCodec;

impl PhysicalExtensionCodec for SourceCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        _inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let node = CsvScanNode::decode(buf).map_err(|e| internal(format!("bad csv scan: {e}")))?;
        let schema = decode_schema(node.file_schema.as_ref(), "csv scan")?;
        let mode = CsvMode::from_u32(node.mode)
            .ok_or_else(|| internal(format!("unknown csv mode {}", node.mode)))?;
        let delimiter = u8::try_from(node.delimiter)
            .map_err(|_| internal(format!("bad delimiter {}", node.delimiter)))?;
        let files = node
            .partitions
            .into_iter()
            .map(|p| {
                p.objects
                    .into_iter()
                    .zip(p.displays)
                    .map(|(object, display)| CsvFile { object, display })
                    .collect()
            })
            .collect();
        let projection = node
            .projected
            .then(|| node.projection.iter().map(|i| *i as usize).collect());
        Ok(Arc::new(CsvScanExec::try_new(
            ObjectStoreUrl::parse(&node.store_url)?,
            files,
            schema,
            CsvScanOptions {
                has_header: node.has_header,
                delimiter,
                mode,
                corrupt_column: node.corrupt_column,
            },
            projection,
        )?))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let Some(scan) = node.downcast_ref::<CsvScanExec>() else {
            return Err(not_shippable(node.as_ref()));
        };
        let options = scan.options();
        let msg = CsvScanNode {
            store_url: scan.store_url().as_str().to_string(),
            partitions: scan
                .files()
                .iter()
                .map(|files| CsvPartition {
                    objects: files.iter().map(|f| f.object.clone()).collect(),
                    displays: files.iter().map(|f| f.display.clone()).collect(),
                })
                .collect(),
            file_schema: Some(protobuf::Schema::try_from(scan.file_schema().as_ref())?),
            has_header: options.has_header,
            delimiter: u32::from(options.delimiter),
            mode: options.mode.as_u32(),
            corrupt_column: options.corrupt_column.clone(),
            projected: scan.projection().is_some(),
            projection: scan
                .projection()
                .map(|p| p.iter().map(|i| *i as u64).collect())
                .unwrap_or_default(),
        };
        msg.encode(buf)
            .map_err(|e| internal(format!("encode csv scan: {e}")))
    }

    fn try_decode_udf(&self, name: &str, _buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        Err(DataFusionError::NotImplemented(format!(
            "unknown scalar function {name}"
        )))
    }
}
