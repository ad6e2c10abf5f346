//! `predict(model, c1, c2, ...)`: a trained model as a scalar function, usable in any
//! expression of a DataFrame or SQL query.
//!
//! ```text
//!  predict('km', x, y)            as written; the model is named by a string literal
//!     │ planning: the name is looked up in the session's ModelRegistry (return type),
//!     │ and the call is rewritten (ScalarUDFImpl::simplify) into
//!     ▼
//!  predict[km](x, y)              a PredictModel bound to that model; its weights travel
//!                                 inside the plan to executors (KilnPhysicalCodec)
//! ```
//!
//! Binding at planning time means executors need no model catalog: the plan carries the model.
//!
//! `predict_proba(model, c1, ...)` works the same way and returns the class probabilities of a
//! classifier as a `FixedSizeList<Float64>` (index 0 first; in SQL, `predict_proba(...)[2]` is
//! the probability of class 1).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use kiln_ml::Model;
use prost::Message;

/// Name of the model-prediction function.
pub const PREDICT: &str = "predict";

/// Name of the class-probability function.
pub const PREDICT_PROBA: &str = "predict_proba";

/// Prefix of the name of a [`PredictModel`]: `predict[name]`.
const BOUND_PREFIX: &str = "predict[";

/// Prefix of the name of a probability [`PredictModel`]: `predict_proba[name]`.
const BOUND_PROBA_PREFIX: &str = "predict_proba[";

/// What a prediction function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// The prediction (cluster, value or class): `predict`.
    Prediction,
    /// The class probabilities: `predict_proba`.
    Probability,
}

impl Output {
    fn function(self) -> &'static str {
        match self {
            Output::Prediction => PREDICT,
            Output::Probability => PREDICT_PROBA,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Output::Prediction => BOUND_PREFIX,
            Output::Probability => BOUND_PROBA_PREFIX,
        }
    }

    /// The Arrow type `model` returns for this output.
    fn data_type(self, name: &str, model: &Model) -> DfResult<DataType> {
        match self {
            Output::Prediction => Ok(model.output_type()),
            Output::Probability => model.probability_type().ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "{PREDICT_PROBA}: model '{name}' is a {} model, which has no class probabilities",
                    model.algorithm()
                ))
            }),
        }
    }
}

/// The models a session knows by name.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    models: RwLock<HashMap<String, Arc<Model>>>,
}

impl ModelRegistry {
    /// Registers (or replaces) `model` under `name`.
    pub fn register(&self, name: &str, model: Arc<Model>) {
        if let Ok(mut models) = self.models.write() {
            models.insert(name.to_string(), model);
        }
    }

    /// Removes a model; returns whether it was registered.
    pub fn deregister(&self, name: &str) -> bool {
        self.models
            .write()
            .map(|mut m| m.remove(name).is_some())
            .unwrap_or(false)
    }

    /// The model registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Model>> {
        self.models.read().ok().and_then(|m| m.get(name).cloned())
    }

    /// Registered model names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .models
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    fn lookup(&self, name: &str) -> DfResult<Arc<Model>> {
        self.get(name).ok_or_else(|| {
            let known = self.names();
            DataFusionError::Plan(format!(
                "{PREDICT}: no model named '{name}'; registered models: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }
}

/// `predict('model', c1, ...)` as written, resolved against a [`ModelRegistry`] at planning.
#[derive(Debug)]
pub struct Predict {
    registry: Arc<ModelRegistry>,
    output: Output,
    signature: Signature,
}

impl Predict {
    /// The function over `registry`.
    pub fn new(registry: Arc<ModelRegistry>, output: Output) -> Self {
        Self {
            registry,
            output,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// `predict` as a DataFusion scalar function.
    pub fn udf(registry: Arc<ModelRegistry>) -> ScalarUDF {
        ScalarUDF::from(Self::new(registry, Output::Prediction))
    }

    /// `predict_proba` as a DataFusion scalar function.
    pub fn proba_udf(registry: Arc<ModelRegistry>) -> ScalarUDF {
        ScalarUDF::from(Self::new(registry, Output::Probability))
    }
}

impl PartialEq for Predict {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.registry, &other.registry) && self.output == other.output
    }
}

impl Eq for Predict {}

impl Hash for Predict {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.output.function().hash(state);
    }
}

fn model_name(function: &str, arg: Option<&ScalarValue>) -> DfResult<String> {
    match arg {
        Some(ScalarValue::Utf8(Some(s)))
        | Some(ScalarValue::LargeUtf8(Some(s)))
        | Some(ScalarValue::Utf8View(Some(s))) => Ok(s.clone()),
        _ => Err(DataFusionError::Plan(format!(
            "{function}: the first argument must be a model name as a string literal, e.g. {function}('my_model', x, y)"
        ))),
    }
}

impl ScalarUDFImpl for Predict {
    fn name(&self) -> &str {
        self.output.function()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(format!(
            "{}: the return type depends on the model; use return_field_from_args",
            self.output.function()
        )))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let function = self.output.function();
        let name = model_name(function, args.scalar_arguments.first().copied().flatten())?;
        let model = self.registry.lookup(&name)?;
        check_arity(&name, &model, args.arg_fields.len().saturating_sub(1))?;
        Ok(Arc::new(Field::new(
            function,
            self.output.data_type(&name, &model)?,
            true,
        )))
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let Some(Expr::Literal(value, _)) = args.first() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        let name = model_name(self.output.function(), Some(value))?;
        let model = self.registry.lookup(&name)?;
        self.output.data_type(&name, &model)?;
        let bound = ScalarUDF::from(PredictModel::with_output(name, model, self.output));
        Ok(ExprSimplifyResult::Simplified(
            bound.call(args.into_iter().skip(1).collect()),
        ))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(DataFusionError::Plan(format!(
            "{}: the first argument must be a model name as a string literal",
            self.output.function()
        )))
    }
}

fn check_arity(name: &str, model: &Model, given: usize) -> DfResult<()> {
    if given != model.num_features() {
        return Err(DataFusionError::Plan(format!(
            "{PREDICT}: model '{name}' takes {} feature columns ({}), got {given}",
            model.num_features(),
            model.feature_names().join(", ")
        )));
    }
    Ok(())
}

/// `predict[name](c1, ...)`: prediction with one model, bound at planning. Travels to executors
/// with the model's files inside the plan.
#[derive(Debug)]
pub struct PredictModel {
    model_name: String,
    function_name: String,
    model: Arc<Model>,
    output: Output,
    signature: Signature,
}

impl PredictModel {
    /// `model`, called `name` in the session, predicting.
    pub fn new(model_name: String, model: Arc<Model>) -> Self {
        Self::with_output(model_name, model, Output::Prediction)
    }

    /// `model`, called `name` in the session, returning `output`.
    pub fn with_output(model_name: String, model: Arc<Model>, output: Output) -> Self {
        Self {
            function_name: format!("{}{model_name}]", output.prefix()),
            model_name,
            model,
            output,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }
}

impl PartialEq for PredictModel {
    fn eq(&self, other: &Self) -> bool {
        self.model_name == other.model_name
            && self.output == other.output
            && Arc::ptr_eq(&self.model, &other.model)
    }
}

impl Eq for PredictModel {}

impl Hash for PredictModel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.function_name.hash(state);
    }
}

impl ScalarUDFImpl for PredictModel {
    fn name(&self) -> &str {
        &self.function_name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_arity(&self.model_name, &self.model, arg_types.len())?;
        self.output.data_type(&self.model_name, &self.model)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .into_iter()
            .map(|v| v.into_array(rows))
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        let out = match self.output {
            Output::Prediction => self.model.predict_arrays(&arrays),
            Output::Probability => self.model.predict_proba_arrays(&arrays),
        }
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.function_name)))?;
        Ok(ColumnarValue::Array(out))
    }
}

/// Wire form of a [`PredictModel`]: its name and its model's files.
#[derive(Clone, PartialEq, Message)]
struct PredictModelNode {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, repeated, tag = "2")]
    file_names: Vec<String>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    file_bytes: Vec<Vec<u8>>,
    #[prost(bool, tag = "4")]
    probability: bool,
}

/// Encodes `udf` if it is a [`PredictModel`]; returns whether it was.
///
/// # Errors
/// If the model cannot be written as files.
pub fn encode_predict(udf: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<bool> {
    let Some(bound) = udf.inner().downcast_ref::<PredictModel>() else {
        return Ok(false);
    };
    let files = bound
        .model
        .to_files()
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", bound.function_name)))?;
    let (file_names, file_bytes) = files.into_iter().unzip();
    PredictModelNode {
        name: bound.model_name.clone(),
        file_names,
        file_bytes,
        probability: bound.output == Output::Probability,
    }
    .encode(buf)
    .map_err(|e| DataFusionError::Internal(format!("encode {}: {e}", bound.function_name)))?;
    Ok(true)
}

/// Decodes a [`PredictModel`] encoded by [`encode_predict`], if `name` is one.
///
/// # Errors
/// Bytes that are not a model.
pub fn decode_predict(name: &str, buf: &[u8]) -> DfResult<Option<ScalarUDF>> {
    if !name.starts_with(BOUND_PREFIX) && !name.starts_with(BOUND_PROBA_PREFIX) {
        return Ok(None);
    }
    let node = PredictModelNode::decode(buf)
        .map_err(|e| DataFusionError::Internal(format!("bad {name} node: {e}")))?;
    let files: HashMap<String, Vec<u8>> =
        node.file_names.into_iter().zip(node.file_bytes).collect();
    let model = Model::from_files(|f| files.get(f).cloned())
        .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?;
    let output = if node.probability {
        Output::Probability
    } else {
        Output::Prediction
    };
    Ok(Some(ScalarUDF::from(PredictModel::with_output(
        node.name,
        Arc::new(model),
        output,
    ))))
}
