//! What Kiln's benchmarks share: the seeded k-means / logistic-regression dataset, and running
//! a measuring child process.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

/// Errors of the benchmark programs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `command` to its end and answers what it printed on standard output; a failed run is
/// an error naming `what` and carrying the child's standard error.
pub fn child_stdout(command: &mut Command, what: &str) -> Result<String, BoxError> {
    let out = command.output()?;
    if !out.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `rows` × `dims` f64 features in `k` overlapping seeded Gaussian blobs, plus a 0/1 label.
#[derive(Debug, Clone, Copy)]
pub struct Blobs {
    /// Rows.
    pub rows: usize,
    /// Feature columns, `x0` to `x{dims-1}`.
    pub dims: usize,
    /// Blobs.
    pub k: usize,
}

impl Blobs {
    /// The directory the data is written to: `data/ml/points-{rows}x{dims}`.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!("data/ml/points-{}x{}", self.rows, self.dims))
    }

    /// The feature column names.
    pub fn features(&self) -> Vec<String> {
        (0..self.dims).map(|j| format!("x{j}")).collect()
    }

    /// Writes the dataset unless it exists, and returns its directory: Parquet (4 files,
    /// `part-N.parquet`) for Kiln, raw little-endian f64 rows (features then label,
    /// `points.f64`) for scikit-learn.
    ///
    /// # Errors
    /// The files cannot be written.
    pub fn write(&self) -> Result<PathBuf, BoxError> {
        let dir = self.dir();
        let raw = dir.join("points.f64");
        if raw.exists() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&dir)?;
        let (n, d) = (self.rows, self.dims);
        let mut rng = Rng(42);
        let centres: Vec<Vec<f64>> = (0..self.k)
            .map(|_| (0..d).map(|_| rng.next_f64() * 20.0 - 10.0).collect())
            .collect();
        let mut fields: Vec<Field> = (0..d)
            .map(|j| Field::new(format!("x{j}"), DataType::Float64, false))
            .collect();
        fields.push(Field::new("label", DataType::Float64, false));
        let schema = Arc::new(Schema::new(fields));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&raw)?);
        let per_file = n.div_ceil(4);
        for f in 0..4 {
            let lo = f * per_file;
            let hi = ((f + 1) * per_file).min(n);
            let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(hi - lo); d + 1];
            for i in lo..hi {
                let c = &centres[i % self.k];
                let mut margin = 0.0;
                for j in 0..d {
                    let v = c[j] + 6.0 * rng.normal(); // overlapping blobs: Lloyd runs all iterations
                    margin += if j % 2 == 0 { v } else { -v } * 0.1;
                    cols[j].push(v);
                    out.write_all(&v.to_le_bytes())?;
                }
                let label = if margin + rng.normal() > 0.0 {
                    1.0
                } else {
                    0.0
                };
                cols[d].push(label);
                out.write_all(&label.to_le_bytes())?;
            }
            let arrays: Vec<ArrayRef> = cols
                .into_iter()
                .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
                .collect();
            let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
            let file = std::fs::File::create(dir.join(format!("part-{f}.parquet")))?;
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), None)?;
            writer.write(&batch)?;
            writer.close()?;
        }
        out.flush()?;
        Ok(dir)
    }
}

/// The first `k` rows of `df`'s first `dims` columns (all f64): the initial k-means centres
/// the benchmarks give every engine.
///
/// # Errors
/// The query fails or a column is not f64.
pub async fn first_rows(
    df: &kiln::DataFrame,
    k: usize,
    dims: usize,
) -> Result<Vec<Vec<f64>>, BoxError> {
    let first = df.clone().limit(k)?.collect().await?;
    let mut rows = vec![Vec::with_capacity(dims); k];
    for b in &first {
        for j in 0..dims {
            let col = b
                .column(j)
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or("the benchmark's feature columns are f64")?;
            for (i, v) in col.values().iter().enumerate() {
                rows[i].push(*v);
            }
        }
    }
    Ok(rows)
}

/// SplitMix64: a small seeded generator, so the data is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.next_f64().max(1e-300), self.next_f64());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The first row's last column of `batches` as text: what the benchmarks compare between
/// engines to check that they agree.
pub fn answer_cell(batches: &[RecordBatch]) -> String {
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| {
            datafusion::arrow::util::display::array_value_to_string(
                b.column(b.num_columns() - 1),
                0,
            )
            .ok()
        })
        .unwrap_or_default()
}

/// The median of `values` (NaN for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `query` once to warm up and `reps` times; the median seconds of the timed runs and
/// the last run's [`answer_cell`].
///
/// # Errors
/// The query's.
pub async fn time_runs<F, Fut>(reps: usize, mut query: F) -> Result<(f64, String), BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<RecordBatch>, BoxError>>,
{
    let mut times = Vec::new();
    let mut answer = String::new();
    for i in 0..=reps {
        let start = std::time::Instant::now();
        let batches = query().await?;
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
        answer = answer_cell(&batches);
    }
    Ok((median(times), answer))
}
