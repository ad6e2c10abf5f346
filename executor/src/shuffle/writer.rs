//! The map side of the shuffle: split a task's output into reduce partitions and write them as
//! one object.

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::ipc::CompressionType;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use datafusion::physical_plan::metrics;
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use kiln_planner::task::{MapStatus, ShuffleCompression, ShuffleRange};
use object_store::{ObjectStoreExt, PutPayload};

use super::StoreRoot;
use crate::error::{ExecError, Result};

/// Rows gathered per reduce partition before they are encoded as one IPC batch, so a hash
/// split into many partitions does not write many tiny batches.
const TARGET_BATCH_ROWS: usize = 8192;

/// Which map task attempt is writing.
#[derive(Clone, Debug)]
pub struct MapOutputId {
    /// The job.
    pub job_id: String,
    /// The stage.
    pub stage_id: u32,
    /// The map partition.
    pub map_partition: u32,
    /// The attempt.
    pub attempt: u32,
    /// The executor running it.
    pub executor_id: String,
    /// Compression of the IPC buffers.
    pub compression: ShuffleCompression,
}

/// One reduce partition's encoder.
struct RangeEncoder {
    schema: SchemaRef,
    compression: Option<CompressionType>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    writer: Option<StreamWriter<Vec<u8>>>,
    rows: u64,
}

impl RangeEncoder {
    fn new(schema: SchemaRef, compression: Option<CompressionType>) -> Self {
        Self {
            schema,
            compression,
            pending: Vec::new(),
            pending_rows: 0,
            writer: None,
            rows: 0,
        }
    }

    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // A batch that is already a fair size is written as it is: no copy.
        if self.pending.is_empty() && batch.num_rows() >= TARGET_BATCH_ROWS / 4 {
            self.pending.push(batch);
            return self.flush();
        }
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= TARGET_BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = if self.pending.len() == 1 {
            self.pending.remove(0)
        } else {
            let b = concat_batches(&self.schema, &self.pending)?;
            self.pending.clear();
            b
        };
        self.pending_rows = 0;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let options = IpcWriteOptions::default().try_with_compression(self.compression)?;
                self.writer.insert(StreamWriter::try_new_with_options(
                    Vec::new(),
                    &self.schema,
                    options,
                )?)
            }
        };
        self.rows += batch.num_rows() as u64;
        writer.write(&batch)?;
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<u8>, u64)> {
        self.flush()?;
        match self.writer {
            Some(mut w) => {
                w.finish()?;
                Ok((w.into_inner()?, self.rows))
            }
            None => Ok((Vec::new(), 0)),
        }
    }
}

/// Drains `stream`, splits it with `partitioner` (or keeps it whole when `None`), and writes the
/// object for this map task attempt. Returns the [`MapStatus`] the driver hands to reducers.
///
/// # Errors
/// The stream's error, an encoding error, or the object store's error.
pub async fn write_task_output(
    mut stream: SendableRecordBatchStream,
    mut partitioner: Option<BatchPartitioner>,
    reduce_partitions: usize,
    root: &StoreRoot,
    id: &MapOutputId,
) -> Result<MapStatus> {
    let schema = stream.schema();
    let compression = match id.compression {
        ShuffleCompression::None => None,
        ShuffleCompression::Lz4 => Some(CompressionType::LZ4_FRAME),
        ShuffleCompression::Zstd => Some(CompressionType::ZSTD),
    };
    let mut encoders: Vec<RangeEncoder> = (0..reduce_partitions.max(1))
        .map(|_| RangeEncoder::new(schema.clone(), compression))
        .collect();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        match &mut partitioner {
            Some(p) => {
                let mut failed: Option<ExecError> = None;
                p.partition(batch, |reduce, part| {
                    match encoders.get_mut(reduce) {
                        Some(enc) => {
                            if let Err(e) = enc.push(part) {
                                failed = Some(e);
                            }
                        }
                        None => {
                            failed = Some(ExecError::Internal(format!(
                                "partitioner produced partition {reduce} of {reduce_partitions}"
                            )))
                        }
                    }
                    Ok(())
                })?;
                if let Some(e) = failed {
                    return Err(e);
                }
            }
            None => {
                if let Some(enc) = encoders.first_mut() {
                    enc.push(batch)?;
                }
            }
        }
    }

    let mut ranges = Vec::with_capacity(encoders.len());
    let mut chunks = Vec::with_capacity(encoders.len());
    let mut offset = 0u64;
    let mut total_rows = 0u64;
    for enc in encoders {
        let (bytes, rows) = enc.finish()?;
        let len = bytes.len() as u64;
        ranges.push(ShuffleRange {
            offset,
            len,
            rows,
            crc32: crc32fast::hash(&bytes),
        });
        offset += len;
        total_rows += rows;
        if !bytes.is_empty() {
            chunks.push(Bytes::from(bytes));
        }
    }
    let path = root.map_output_path(&id.job_id, id.stage_id, id.map_partition, id.attempt);
    let payload: PutPayload = chunks.into_iter().collect();
    root.store.put(&path, payload).await?;
    Ok(MapStatus {
        stage_id: id.stage_id,
        map_partition: id.map_partition,
        attempt: id.attempt,
        object: path.to_string(),
        ranges,
        rows: total_rows,
        bytes: offset,
        executor_id: id.executor_id.clone(),
    })
}

/// A partitioner with a fresh timer, for map tasks.
///
/// # Errors
/// If DataFusion cannot build a partitioner for `partitioning`.
pub fn new_partitioner(
    partitioning: datafusion::physical_plan::Partitioning,
    input_partition: usize,
    input_partitions: usize,
) -> Result<BatchPartitioner> {
    Ok(BatchPartitioner::try_new(
        partitioning,
        metrics::Time::new(),
        input_partition,
        input_partitions,
    )?)
}
