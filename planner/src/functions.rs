//! Kiln's own scalar functions, registered on the driver and on every executor.
//!
//! `kiln_uniform(seed, c1, c2, ...)` maps each row to a number in `[0, 1)` that depends only on
//! the seed and the row's values — never on partitioning, executor count or thread count. It is
//! what makes `sample` and `random_split` give the same rows on 1 or 50 executors.
//! Rows with identical values get identical numbers (so duplicates go to the same side of a
//! split), which is the price of that independence.
//!
//! `kiln_raise_error(message)` fails the query with the message of the first row it is
//! evaluated on. Feature transformers put it in the `ELSE` branch of a `CASE` so that a value
//! they cannot handle (an unseen label, a null feature) stops the query with a message naming
//! the column and the value; `CASE` evaluates a branch only on the rows that reach it.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::hash_utils::{create_hashes, QualityRandomState};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Name of the seeded row-uniform function.
pub const KILN_UNIFORM: &str = "kiln_uniform";

/// Name of the function that fails the query with a message.
pub const KILN_RAISE_ERROR: &str = "kiln_raise_error";

/// All of Kiln's scalar functions.
pub fn kiln_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(KilnUniform::new())),
        Arc::new(ScalarUDF::from(RaiseError::new())),
    ]
}

/// One of Kiln's scalar functions by name.
pub fn kiln_udf(name: &str) -> Option<Arc<ScalarUDF>> {
    kiln_udfs().into_iter().find(|f| f.name() == name)
}

/// `kiln_uniform(seed, c1, ...)`: a per-row uniform number in `[0, 1)` from the row's values.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KilnUniform {
    signature: Signature,
}

impl Default for KilnUniform {
    fn default() -> Self {
        Self::new()
    }
}

impl KilnUniform {
    /// The function.
    pub fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// SplitMix64's finalizer: spreads the bits of a hash so its top 53 bits are uniform.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl ScalarUDFImpl for KilnUniform {
    fn name(&self) -> &str {
        KILN_UNIFORM
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let mut values = args.args.into_iter();
        let seed = match values.next() {
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(s)))) => s as u64,
            Some(ColumnarValue::Scalar(ScalarValue::UInt64(Some(s)))) => s,
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "{KILN_UNIFORM} takes a constant integer seed as its first argument"
                )))
            }
        };
        let arrays = values
            .map(|v| v.into_array(rows))
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        let mut hashes = vec![0u64; rows];
        if arrays.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "{KILN_UNIFORM} needs at least one column after the seed"
            )));
        }
        create_hashes(&arrays, &QualityRandomState::with_seed(seed), &mut hashes)?;
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        let out = Float64Array::from_iter_values(
            hashes.iter().map(|h| (mix(*h ^ seed) >> 11) as f64 * SCALE),
        );
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `kiln_raise_error(message)`: typed `Float64` so that it fits a numeric `CASE`; returns a
/// value only when evaluated on no rows, and otherwise fails with the first row's message.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RaiseError {
    signature: Signature,
}

impl Default for RaiseError {
    fn default() -> Self {
        Self::new()
    }
}

impl RaiseError {
    /// The function.
    pub fn new() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for RaiseError {
    fn name(&self) -> &str {
        KILN_RAISE_ERROR
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        if rows == 0 {
            return Ok(ColumnarValue::Array(Arc::new(Float64Array::from(
                Vec::<f64>::new(),
            ))));
        }
        let message = match args.args.first() {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(m)))) => m.clone(),
            Some(ColumnarValue::Array(a)) => {
                let strings = a.as_any().downcast_ref::<arrow::array::StringArray>();
                strings
                    .and_then(|s| s.iter().flatten().next().map(str::to_string))
                    .unwrap_or_else(|| "invalid value".to_string())
            }
            _ => "invalid value".to_string(),
        };
        Err(DataFusionError::Execution(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_spreads_small_inputs() {
        let a = (mix(1) >> 11) as f64 / (1u64 << 53) as f64;
        let b = (mix(2) >> 11) as f64 / (1u64 << 53) as f64;
        assert!((0.0..1.0).contains(&a) && (0.0..1.0).contains(&b));
        assert_ne!(a, b);
    }
}
