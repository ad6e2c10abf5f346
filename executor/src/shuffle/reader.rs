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
use futures::{stream, StreamExt};
use kiln_planner::task::ShuffleRange;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::ExecError;

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
            .map(move |loc| read_range(Arc::clone(&store), loc))
            .flatten();
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

/// Bytes fetched per ranged GET: a reducer holds about this much undecoded data per range.
const CHUNK_BYTES: u64 = 4 << 20;

/// Reading state of one range: fetched chunk by chunk, decoded batch by batch, its length,
/// CRC-32 and row count checked at the end.
struct RangeReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    loc: ReadLocation,
    next_offset: u64,
    end: u64,
    crc: crc32fast::Hasher,
    buffer: Buffer,
    decoder: StreamDecoder,
    rows: u64,
    done: bool,
}

impl RangeReader {
    fn new(store: Arc<dyn ObjectStore>, loc: ReadLocation) -> Self {
        let start = loc.range.offset;
        Self {
            store,
            path: Path::from(loc.object.as_str()),
            next_offset: start,
            end: start + loc.range.len,
            loc,
            crc: crc32fast::Hasher::new(),
            buffer: Buffer::from(Vec::<u8>::new()),
            decoder: StreamDecoder::new(),
            rows: 0,
            done: false,
        }
    }

    /// Fetches the next chunk into the CRC and returns it; `None` once the range is read.
    async fn fetch_chunk(&mut self) -> DfResult<Option<Bytes>> {
        if self.next_offset >= self.end {
            return Ok(None);
        }
        let to = self.end.min(self.next_offset + CHUNK_BYTES);
        let bytes = match self.store.get_range(&self.path, self.next_offset..to).await {
            Ok(bytes) => bytes,
            // The object is gone: its map output must be recomputed.
            Err(e @ object_store::Error::NotFound { .. }) => {
                return Err(fetch_failed(&self.loc, e.to_string()))
            }
            // Anything else may be transient: fail this task so it is retried.
            Err(e) => {
                return Err(DataFusionError::External(Box::new(ExecError::ObjectStore(
                    e,
                ))))
            }
        };
        let expected = to - self.next_offset;
        if bytes.len() as u64 != expected {
            return Err(fetch_failed(
                &self.loc,
                format!(
                    "range {}..{to} returned {} bytes, expected {expected} (object truncated?)",
                    self.next_offset,
                    bytes.len()
                ),
            ));
        }
        self.crc.update(&bytes);
        self.next_offset = to;
        Ok(Some(bytes))
    }

    /// The checksum verdict once every byte has been fetched.
    fn check_crc(&self) -> DfResult<()> {
        let crc = self.crc.clone().finalize();
        if crc == self.loc.range.crc32 {
            Ok(())
        } else {
            Err(fetch_failed(
                &self.loc,
                format!(
                    "checksum mismatch in range {}..{}: expected {:08x}, found {crc:08x}",
                    self.loc.range.offset, self.end, self.loc.range.crc32
                ),
            ))
        }
    }

    /// After a decode error: read the rest so a damaged range is reported as a checksum
    /// mismatch (the cause) rather than as the decoding symptom.
    async fn diagnose(&mut self, decode_error: String) -> DataFusionError {
        loop {
            match self.fetch_chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => return e,
            }
        }
        match self.check_crc() {
            Err(e) => e,
            Ok(()) => fetch_failed(
                &self.loc,
                format!("cannot decode Arrow IPC: {decode_error}"),
            ),
        }
    }

    async fn next_batch(&mut self) -> Option<DfResult<RecordBatch>> {
        if self.done {
            return None;
        }
        let result = self.next_batch_inner().await;
        if !matches!(result, Some(Ok(_))) {
            self.done = true;
        }
        result
    }

    async fn next_batch_inner(&mut self) -> Option<DfResult<RecordBatch>> {
        loop {
            if !self.buffer.is_empty() {
                match self.decoder.decode(&mut self.buffer) {
                    Ok(Some(batch)) => {
                        self.rows += batch.num_rows() as u64;
                        return Some(Ok(batch));
                    }
                    Ok(None) => continue,
                    Err(e) => return Some(Err(self.diagnose(e.to_string()).await)),
                }
            }
            match self.fetch_chunk().await {
                Ok(Some(bytes)) => self.buffer = Buffer::from(bytes),
                Ok(None) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        if let Err(e) = self.check_crc() {
            return Some(Err(e));
        }
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
        None
    }
}

/// The batches of one range, read and decoded incrementally.
fn read_range(
    store: Arc<dyn ObjectStore>,
    loc: ReadLocation,
) -> impl futures::Stream<Item = DfResult<RecordBatch>> {
    stream::unfold(RangeReader::new(store, loc), |mut reader| async move {
        reader.next_batch().await.map(|item| (item, reader))
    })
}
