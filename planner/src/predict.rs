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

/// Prefix of the name of a [`PredictModel`]: `predict[name]`.
const BOUND_PREFIX: &str = "predict[";

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
    signature: Signature,
}

impl Predict {
    /// The function over `registry`.
    pub fn new(registry: Arc<ModelRegistry>) -> Self {
        Self {
            registry,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// As a DataFusion scalar function.
    pub fn udf(registry: Arc<ModelRegistry>) -> ScalarUDF {
        ScalarUDF::from(Self::new(registry))
    }
}

impl PartialEq for Predict {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.registry, &other.registry)
    }
}

impl Eq for Predict {}

impl Hash for Predict {
    fn hash<H: Hasher>(&self, state: &mut H) {
        PREDICT.hash(state);
    }
}

fn model_name(arg: Option<&ScalarValue>) -> DfResult<String> {
    match arg {
        Some(ScalarValue::Utf8(Some(s)))
        | Some(ScalarValue::LargeUtf8(Some(s)))
        | Some(ScalarValue::Utf8View(Some(s))) => Ok(s.clone()),
        _ => Err(DataFusionError::Plan(format!(
            "{PREDICT}: the first argument must be a model name as a string literal, e.g. {PREDICT}('my_model', x, y)"
        ))),
    }
}

impl ScalarUDFImpl for Predict {
    fn name(&self) -> &str {
        PREDICT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(format!(
            "{PREDICT}: the return type depends on the model; use return_field_from_args"
        )))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let name = model_name(args.scalar_arguments.first().copied().flatten())?;
        let model = self.registry.lookup(&name)?;
        check_arity(&name, &model, args.arg_fields.len() - 1)?;
        Ok(Arc::new(Field::new(PREDICT, model.output_type(), true)))
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let Some(Expr::Literal(value, _)) = args.first() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        let name = model_name(Some(value))?;
        let model = self.registry.lookup(&name)?;
        let bound = ScalarUDF::from(PredictModel::new(name, model));
        Ok(ExprSimplifyResult::Simplified(
            bound.call(args.into_iter().skip(1).collect()),
        ))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(DataFusionError::Plan(format!(
            "{PREDICT}: the first argument must be a model name as a string literal"
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
    signature: Signature,
}

impl PredictModel {
    /// `model`, called `name` in the session.
    pub fn new(model_name: String, model: Arc<Model>) -> Self {
        Self {
            function_name: format!("{BOUND_PREFIX}{model_name}]"),
            model_name,
            model,
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
        self.model_name == other.model_name && Arc::ptr_eq(&self.model, &other.model)
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
        Ok(self.model.output_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .into_iter()
            .map(|v| v.into_array(rows))
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        let out = self
            .model
            .predict_arrays(&arrays)
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
    if !name.starts_with(BOUND_PREFIX) {
        return Ok(None);
    }
    let node = PredictModelNode::decode(buf)
        .map_err(|e| DataFusionError::Internal(format!("bad {name} node: {e}")))?;
    let files: HashMap<String, Vec<u8>> =
        node.file_names.into_iter().zip(node.file_bytes).collect();
    let model = Model::from_files(|f| files.get(f).cloned())
        .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?;
    Ok(Some(ScalarUDF::from(PredictModel::new(
        node.name,
        Arc::new(model),
    ))))
}
