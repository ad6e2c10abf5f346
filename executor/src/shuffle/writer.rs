//! The map side of the shuffle: split a task's output into reduce partitions and write them as
//! one object.
//!
//! Each reduce partition is encoded as it arrives into its own anonymous temporary file (with a
//! running CRC-32), so a map task holds only a few batches in memory whatever its output size.
//! At the end the ranges are concatenated into the object: one `put` for a small object, a
//! multipart upload in parts of [`PART_BYTES`] otherwise.

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

/// Size of the parts a large map output is uploaded in (and the largest object written in a
/// single `put`).
const PART_BYTES: usize = 8 << 20;

/// A file writer that counts the bytes and checksums them on the way.
struct SpillWriter {
    file: std::io::BufWriter<std::fs::File>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl std::io::Write for SpillWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A finished range: its spill file (if it holds any bytes) and its entry in the map status.
struct EncodedRange {
    file: Option<std::fs::File>,
    len: u64,
    rows: u64,
    crc32: u32,
}

/// Rows gathered per reduce partition before they are encoded as one IPC batch, so a hash
/// split into many partitions does not write many tiny batches.
const TARGET_BATCH_ROWS: usize = 8192;

/// `batch` with every string or binary view column that references far more buffer bytes than
/// its rows use copied into buffers of its own.
///
/// Arrow IPC writes a view array with all the data buffers its views point into. A join that
/// takes a few rows of a broadcast build side hands out views into the whole build side's
/// buffers, so without this each shuffled batch carried every build-side string again (TPC-H
/// Q18 grouping by `c_name` wrote gigabytes for a few megabytes of names).
fn compact_views(batch: RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{ArrayRef, AsArray, GenericByteViewArray};
    use arrow::datatypes::{ByteViewType, DataType};
    fn compact<T: ByteViewType + ?Sized>(a: &GenericByteViewArray<T>) -> Option<ArrayRef> {
        let buffers = view_buffer_bytes(a);
        (buffers > 64 * 1024 && buffers > 2 * a.total_buffer_bytes_used())
            .then(|| std::sync::Arc::new(a.gc()) as ArrayRef)
    }
    let mut changed = false;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| {
            let compacted = match c.data_type() {
                DataType::Utf8View => compact(c.as_string_view()),
                DataType::BinaryView => compact(c.as_binary_view()),
                _ => None,
            };
            changed |= compacted.is_some();
            compacted.unwrap_or_else(|| std::sync::Arc::clone(c))
        })
        .collect();
    if !changed {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Bytes of the data buffers a view array points into.
fn view_buffer_bytes<T: arrow::datatypes::ByteViewType + ?Sized>(
    a: &arrow::array::GenericByteViewArray<T>,
) -> usize {
    a.data_buffers().iter().map(|b| b.len()).sum()
}

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
    writer: Option<StreamWriter<SpillWriter>>,
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
        let batch = compact_views(batch)?;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let options = IpcWriteOptions::default().try_with_compression(self.compression)?;
                let spill = SpillWriter {
                    file: std::io::BufWriter::with_capacity(1 << 20, tempfile::tempfile()?),
                    crc: crc32fast::Hasher::new(),
                    len: 0,
                };
                self.writer.insert(StreamWriter::try_new_with_options(
                    spill,
                    &self.schema,
                    options,
                )?)
            }
        };
        self.rows += batch.num_rows() as u64;
        writer.write(&batch)?;
        Ok(())
    }

    fn finish(mut self) -> Result<EncodedRange> {
        self.flush()?;
        let Some(mut writer) = self.writer else {
            return Ok(EncodedRange {
                file: None,
                len: 0,
                rows: 0,
                crc32: crc32fast::hash(&[]),
            });
        };
        writer.finish()?;
        let spill = writer.into_inner()?;
        let mut file = spill
            .file
            .into_inner()
            .map_err(|e| ExecError::Io(e.into_error()))?;
        std::io::Seek::rewind(&mut file)?;
        Ok(EncodedRange {
            file: Some(file),
            len: spill.len,
            rows: self.rows,
            crc32: spill.crc.finalize(),
        })
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
    let mut files = Vec::with_capacity(encoders.len());
    let mut offset = 0u64;
    let mut total_rows = 0u64;
    for enc in encoders {
        let range = enc.finish()?;
        ranges.push(ShuffleRange {
            offset,
            len: range.len,
            rows: range.rows,
            crc32: range.crc32,
        });
        offset += range.len;
        total_rows += range.rows;
        files.extend(range.file);
    }
    let path = root.map_output_path(&id.job_id, id.stage_id, id.map_partition, id.attempt);
    upload(root, &path, files, offset).await?;
    Ok(MapStatus {
        stage_id: id.stage_id,
        map_partition: id.map_partition,
        attempt: id.attempt,
        object: path.to_string(),
        ranges,
        rows: total_rows,
        bytes: offset,
        executor_id: id.executor_id.clone(),
        operators: Vec::new(),
    })
}

/// Reads the next part (up to [`PART_BYTES`]) from the spill files, in order.
fn next_part(files: &mut std::collections::VecDeque<std::fs::File>) -> Result<Option<Bytes>> {
    use std::io::Read;
    let mut part = Vec::with_capacity(PART_BYTES);
    while part.len() < PART_BYTES {
        let Some(file) = files.front_mut() else {
            break;
        };
        let want = (PART_BYTES - part.len()) as u64;
        let read = file.take(want).read_to_end(&mut part)?;
        if read == 0 {
            files.pop_front();
        }
    }
    Ok((!part.is_empty()).then(|| Bytes::from(part)))
}

/// Writes the concatenation of the spill files as the object at `path`.
async fn upload(
    root: &StoreRoot,
    path: &object_store::path::Path,
    files: Vec<std::fs::File>,
    total: u64,
) -> Result<()> {
    let mut files: std::collections::VecDeque<_> = files.into();
    if total as usize <= PART_BYTES {
        let payload = next_part(&mut files)?
            .map(PutPayload::from)
            .unwrap_or_default();
        root.store.put(path, payload).await?;
        return Ok(());
    }
    let mut upload = root.store.put_multipart(path).await?;
    let result = async {
        while let Some(part) = next_part(&mut files)? {
            upload.put_part(PutPayload::from(part)).await?;
        }
        upload.complete().await?;
        Ok::<_, ExecError>(())
    }
    .await;
    if result.is_err() {
        // Best effort: do not leave parts behind in the store.
        let _ = upload.abort().await;
    }
    result
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use arrow::array::{AsArray, StringViewArray, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn views_into_a_large_buffer_are_written_with_the_bytes_they_use() {
        // A "build side" of long names, and a few rows taken from it, as a join hands them out.
        let names: StringViewArray = (0..20_000)
            .map(|i| Some(format!("Customer#{i:09}-with-a-long-name")))
            .collect();
        let taken =
            arrow::compute::take(&names, &UInt32Array::from(vec![7, 9_999, 3]), None).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "c_name",
            DataType::Utf8View,
            true,
        )]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![taken]).unwrap();
        let before = view_buffer_bytes(batch.column(0).as_string_view());
        assert!(before > 500_000, "{before}");
        let compacted = compact_views(batch.clone()).unwrap();
        let after = view_buffer_bytes(compacted.column(0).as_string_view());
        assert!(after < 1_000, "{after}");
        assert_eq!(compacted, batch);
        // Encoded, the batch is small too.
        let mut encoder = RangeEncoder::new(schema, None);
        encoder.push(batch).unwrap();
        let range = encoder.finish().unwrap();
        assert!(range.len < 10_000, "{} bytes for 3 names", range.len);
        assert_eq!(range.rows, 3);
    }
}
