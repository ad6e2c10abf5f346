//! The reduce side of the shuffle: [`ShuffleReaderExec`] fetches its byte ranges.

use std::fmt;
use std::sync::Arc;

use arrow::buffer::Buffer;
use arrow::ipc::reader::StreamDecoder;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::{stream, StreamExt, TryStreamExt};
use kiln_planner::task::ShuffleRange;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::ExecError;

/// How many map outputs a reducer fetches at once.
const FETCH_CONCURRENCY: usize = 2;

/// One byte range to read.
#[derive(Clone, Debug)]
pub struct ReadLocation {
    /// Upstream stage.
    pub stage_id: u32,
    /// Upstream map partition.
    pub map_partition: u32,
    /// Object path in the store.
    pub object: String,
    /// The range and its checksum.
    pub range: ShuffleRange,
}

/// Reads shuffle ranges from the object store; partition `p` reads `locations[p]` in order.
#[derive(Debug)]
pub struct ShuffleReaderExec {
    store_url: ObjectStoreUrl,
    locations: Vec<Vec<ReadLocation>>,
    properties: Arc<PlanProperties>,
}

impl ShuffleReaderExec {
    /// A reader over `locations` in the store at `store_url`, with the given properties (whose
    /// partition count must equal `locations.len()`).
    pub fn new(
        store_url: ObjectStoreUrl,
        locations: Vec<Vec<ReadLocation>>,
        properties: Arc<PlanProperties>,
    ) -> Self {
        Self {
            store_url,
            locations,
            properties,
        }
    }
}

impl DisplayAs for ShuffleReaderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: usize = self.locations.iter().map(Vec::len).sum();
        write!(
            f,
            "ShuffleReaderExec: partitions={}, ranges={ranges}",
            self.locations.len()
        )
    }
}

impl ExecutionPlan for ShuffleReaderExec {
    fn name(&self) -> &str {
        "ShuffleReaderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    kiln_planner::leaf_exec_methods!();

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let locations = self.locations.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "ShuffleReaderExec has {} partitions, asked for {partition}",
                self.locations.len()
            ))
        })?;
        let store = context.runtime_env().object_store(&self.store_url)?;
        let schema = self.schema();
        let batches = stream::iter(locations.into_iter().filter(|l| l.range.len > 0))
            .map(move |loc| fetch_range(Arc::clone(&store), loc))
            .buffered(FETCH_CONCURRENCY)
            .map_ok(|(bytes, loc)| decode_range(bytes, loc))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

fn fetch_failed(loc: &ReadLocation, reason: String) -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::FetchFailed {
        stage_id: loc.stage_id,
        map_partition: loc.map_partition,
        object: loc.object.clone(),
        reason,
    }))
}

/// Fetches one range and checks its length and CRC-32 before anything is decoded.
async fn fetch_range(
    store: Arc<dyn ObjectStore>,
    loc: ReadLocation,
) -> DfResult<(Bytes, ReadLocation)> {
    let path = Path::from(loc.object.as_str());
    let start = loc.range.offset;
    let end = start + loc.range.len;
    let bytes = match store.get_range(&path, start..end).await {
        Ok(bytes) => bytes,
        // The object is gone: its map output must be recomputed.
        Err(e @ object_store::Error::NotFound { .. }) => {
            return Err(fetch_failed(&loc, e.to_string()))
        }
        // Anything else may be transient: fail this task so it is retried.
        Err(e) => {
            return Err(DataFusionError::External(Box::new(ExecError::ObjectStore(
                e,
            ))))
        }
    };
    if bytes.len() as u64 != loc.range.len {
        return Err(fetch_failed(
            &loc,
            format!(
                "range {start}..{end} returned {} bytes, expected {}",
                bytes.len(),
                loc.range.len
            ),
        ));
    }
    let crc = crc32fast::hash(&bytes);
    if crc != loc.range.crc32 {
        return Err(fetch_failed(
            &loc,
            format!(
                "checksum mismatch in range {start}..{end}: expected {:08x}, found {crc:08x}",
                loc.range.crc32
            ),
        ));
    }
    Ok((bytes, loc))
}

/// Decoding state of one fetched range.
struct RangeDecoder {
    buffer: Buffer,
    decoder: StreamDecoder,
    rows: u64,
    loc: ReadLocation,
    done: bool,
}

impl RangeDecoder {
    /// The next batch of the range; the row count is checked at the end of the stream.
    fn next_batch(&mut self) -> Option<DfResult<RecordBatch>> {
        if self.done {
            return None;
        }
        loop {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some(batch)) => {
                    self.rows += batch.num_rows() as u64;
                    return Some(Ok(batch));
                }
                Ok(None) if !self.buffer.is_empty() => continue,
                Ok(None) => {
                    self.done = true;
                    if let Err(e) = self.decoder.finish() {
                        return Some(Err(fetch_failed(
                            &self.loc,
                            format!("truncated Arrow IPC: {e}"),
                        )));
                    }
                    if self.rows != self.loc.range.rows {
                        return Some(Err(fetch_failed(
                            &self.loc,
                            format!(
                                "decoded {} rows, expected {}",
                                self.rows, self.loc.range.rows
                            ),
                        )));
                    }
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(fetch_failed(
                        &self.loc,
                        format!("cannot decode Arrow IPC: {e}"),
                    )));
                }
            }
        }
    }
}

/// The batches of a fetched range, decoded one at a time (buffers point into the fetched bytes
/// where the layout allows, so an uncompressed range is not copied again).
fn decode_range(
    bytes: Bytes,
    loc: ReadLocation,
) -> impl futures::Stream<Item = DfResult<RecordBatch>> {
    let state = RangeDecoder {
        buffer: Buffer::from(bytes),
        decoder: StreamDecoder::new(),
        rows: 0,
        loc,
        done: false,
    };
    stream::unfold(state, |mut state| async move {
        state.next_batch().map(|item| (item, state))
    })
}
