//! Helpers shared by the suites: result normalization and session construction.

use arrow::array::{Array, Float32Array, Float64Array};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use kiln::Session;

/// A session with `executors` in-process executors of `slots` slots each.
pub async fn session(executors: usize, slots: usize) -> Session {
    Session::builder()
        .executors(executors)
        .slots_per_executor(slots)
        .build()
        .await
        .expect("session starts")
}

/// Renders a float with 9 significant digits so that sums in a different order compare equal.
fn float_cell(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    format!("{v:.8e}")
}

/// The rows of `batches` as strings, floats rounded (see [`float_cell`]).
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let row = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        return "NULL".to_string();
                    }
                    match c.data_type() {
                        DataType::Float64 => float_cell(
                            c.as_any()
                                .downcast_ref::<Float64Array>()
                                .expect("f64")
                                .value(r),
                        ),
                        DataType::Float32 => float_cell(f64::from(
                            c.as_any()
                                .downcast_ref::<Float32Array>()
                                .expect("f32")
                                .value(r),
                        )),
                        _ => array_value_to_string(c, r).expect("displayable"),
                    }
                })
                .collect();
            out.push(row);
        }
    }
    out
}

/// Rows sorted, for results whose order is not defined.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut r = rows(batches);
    r.sort();
    r
}

/// The partials the driver received in each kernel round over `partitions` partitions, of the
/// events `events` holds (how far the executors merged before sending).
pub fn partials_per_round(
    events: &mut tokio::sync::broadcast::Receiver<kiln::Event>,
    partitions: usize,
) -> Vec<usize> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let kiln::Event::KernelRound {
            partitions: p,
            partials,
            ..
        } = event
        {
            if p == partitions {
                out.push(partials);
            }
        }
    }
    out
}
