//! Unit tests of model files and Arrow prediction, on hand-built models with awkward floats.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int32Array, StringArray,
    UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};

use super::weights;
use super::*;
use crate::cluster::kmeans::{KMeans, KMeansInit};
use crate::data::{DenseMatrix, Features};
use crate::linear::{
    Family, LinearRegression, LogisticRegression, Solver, StepSchedule, TrainingSummary,
};
use crate::optim::StopReason;

fn names(d: usize) -> Vec<String> {
    (0..d).map(|j| format!("f{j}")).collect()
}

fn kmeans() -> KMeansModel {
    KMeansModel::new(
        vec![vec![0.1, 1.0 / 3.0], vec![-0.0, 7.0e-310], vec![10.0, -2.5]],
        0.1 + 0.2,
        3,
        vec![1.0 / 7.0, f64::INFINITY, 0.3],
    )
    .unwrap()
    .with_feature_names(names(2))
    .unwrap()
    .with_params(
        KMeans::new(3)
            .tol(0.0)
            .seed(u64::MAX)
            .init(KMeansInit::Centers(vec![
                vec![0.0, 1.0],
                vec![1.0 / 3.0, 2.0],
                vec![3.0, 3.0],
            ]))
            .check()
            .unwrap(),
    )
    .unwrap()
}

fn linear() -> LinearRegressionModel {
    LinearRegressionModel::try_new(
        names(3),
        "y".into(),
        vec![2.0 / 3.0, -1e-300, 0.0],
        f64::MIN_POSITIVE,
        TrainingSummary::new(vec![10.0, 1.0 / 3.0, f64::NAN], 2, StopReason::NoProgress),
        LinearRegression::new()
            .reg_param(0.1)
            .elastic_net_param(0.25)
            .solver(Solver::Sgd {
                mini_batch_fraction: 0.5,
                step_size: 0.3,
                schedule: StepSchedule::Constant,
            })
            .seed(99)
            .check()
            .unwrap(),
    )
    .unwrap()
}

fn logistic(multinomial: bool) -> LogisticRegressionModel {
    let (k, rows) = if multinomial { (3, 3) } else { (2, 1) };
    let values: Vec<f64> = (0..rows * 2)
        .map(|i| (i as f64 + 1.0) / 7.0 - 0.4)
        .collect();
    let w = DenseMatrix::from_row_major(rows, 2, &values).unwrap();
    let b: Vec<f64> = (0..rows).map(|i| 0.1 * i as f64 - 0.05).collect();
    LogisticRegressionModel::try_new(
        names(2),
        "label".into(),
        w,
        b,
        k,
        TrainingSummary::new(vec![0.69, 0.5], 1, StopReason::Converged),
        LogisticRegression::new()
            .family(if multinomial {
                Family::Multinomial
            } else {
                Family::Auto
            })
            .threshold(0.25)
            .check()
            .unwrap(),
    )
    .unwrap()
}

fn all_models() -> Vec<Model> {
    vec![
        kmeans().into(),
        linear().into(),
        logistic(false).into(),
        logistic(true).into(),
    ]
}

type Files = HashMap<String, Vec<u8>>;

fn files(model: &Model) -> Files {
    model.to_files().unwrap().into_iter().collect()
}

fn load(files: &Files) -> Result<Model, crate::MlError> {
    Model::from_files(|name| files.get(name).cloned())
}

/// The message of loading `files`, which must fail on `file`.
fn failure(files: &Files, file: &str) -> String {
    match load(files).unwrap_err() {
        crate::MlError::ModelFile { path, reason } => {
            assert_eq!(path, file, "{reason}");
            reason
        }
        other => panic!("not a model file error: {other}"),
    }
}

fn metadata(files: &Files) -> Value {
    serde_json::from_slice(&files[METADATA_FILE]).unwrap()
}

fn edit_metadata(model: &Model, edit: impl FnOnce(&mut Value)) -> Files {
    let mut f = files(model);
    let mut m = metadata(&f);
    edit(&mut m);
    f.insert(METADATA_FILE.into(), serde_json::to_vec(&m).unwrap());
    f
}

fn with_weights(model: &Model, batch: &RecordBatch) -> Files {
    let mut f = files(model);
    f.insert(WEIGHTS_FILE.into(), weights::to_ipc(batch).unwrap());
    f
}

fn float_batch(columns: &[(&str, Vec<Option<f64>>)]) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, _)| Field::new(*n, DataType::Float64, true))
        .collect();
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|(_, v)| Arc::new(Float64Array::from(v.clone())) as ArrayRef)
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn every_model_round_trips_bit_for_bit() {
    for model in all_models() {
        let back = load(&files(&model)).unwrap();
        // PartialEq on f64 accepts 0.0 for -0.0 and rejects NaN == NaN (in a summary): compare
        // the Debug text (names, parameters, shapes) and the bits of every float.
        assert_eq!(format!("{back:?}"), format!("{model:?}"));
        match (model.kind(), back.kind()) {
            (ModelKind::KMeans(a), ModelKind::KMeans(b)) => {
                for (x, y) in a.centers().iter().zip(b.centers()) {
                    assert_eq!(bits(x), bits(y));
                }
                assert_eq!(bits(a.cost_history()), bits(b.cost_history()));
                assert_eq!(a.cost().to_bits(), b.cost().to_bits());
            }
            (ModelKind::LinearRegression(a), ModelKind::LinearRegression(b)) => {
                assert_eq!(bits(a.coefficients()), bits(b.coefficients()));
                assert_eq!(a.intercept().to_bits(), b.intercept().to_bits());
                assert_eq!(bits(a.objective_history()), bits(b.objective_history()));
            }
            (ModelKind::LogisticRegression(a), ModelKind::LogisticRegression(b)) => {
                assert_eq!(
                    bits(a.coefficient_matrix().as_slice()),
                    bits(b.coefficient_matrix().as_slice())
                );
                assert_eq!(bits(a.intercepts()), bits(b.intercepts()));
                assert_eq!(bits(a.objective_history()), bits(b.objective_history()));
            }
            _ => panic!("another kind came back"),
        }
        // Writing the loaded model gives the same bytes.
        assert_eq!(files(&back), files(&model));
    }
}

#[test]
fn linear_summary_keeps_nan() {
    let ModelKind::LinearRegression(back) = load(&files(&linear().into())).unwrap().into_kind()
    else {
        panic!()
    };
    assert!(back.objective_history()[2].is_nan());
    assert_eq!(back.summary().stop_reason(), StopReason::NoProgress);
}

#[test]
fn kmeans_without_params_round_trips_with_null_params() {
    let m: Model = KMeansModel::new(vec![vec![1.0], vec![2.0]], 0.5, 1, vec![0.5])
        .unwrap()
        .into();
    assert_eq!(m.params_json(), Value::Null);
    assert_eq!(m.feature_names(), ["x0"]);
    assert_eq!(load(&files(&m)).unwrap(), m);
}

#[test]
fn accessors_and_json_sections() {
    let k: Model = kmeans().into();
    assert_eq!(
        (k.algorithm(), k.label(), k.num_features()),
        ("kmeans", None, 2)
    );
    assert_eq!(
        k.params_json(),
        json!({"k": 3, "max_iter": 20, "tol": 0.0, "seed": u64::MAX, "init_steps": 2,
               "init": {"centers": [[0.0, 1.0], [1.0 / 3.0, 2.0], [3.0, 3.0]]}})
    );
    assert_eq!(
        k.summary_json(),
        json!({"iterations": 3, "cost": 0.1 + 0.2,
               "cost_history": [1.0 / 7.0, "Infinity", 0.3]})
    );
    let l: Model = linear().into();
    assert_eq!(
        (l.algorithm(), l.label(), l.num_features()),
        ("linear_regression", Some("y"), 3)
    );
    assert_eq!(
        l.params_json(),
        json!({"max_iter": 100, "reg_param": 0.1, "elastic_net_param": 0.25, "tol": 1e-6,
               "fit_intercept": true, "standardization": true, "seed": 99,
               "solver": {"sgd": {"mini_batch_fraction": 0.5, "step_size": 0.3,
                                  "schedule": "constant"}}})
    );
    assert_eq!(
        l.summary_json(),
        json!({"iterations": 2, "objective_history": [10.0, 1.0 / 3.0, "NaN"],
               "final_objective": "NaN", "stop_reason": "no_progress"})
    );
    let g: Model = logistic(true).into();
    assert_eq!(g.algorithm(), "logistic_regression");
    assert_eq!(g.params_json()["family"], "multinomial");
    assert_eq!(g.params_json()["threshold"], 0.25);
    assert_eq!(g.params_json()["solver"], "l-bfgs");

    let meta = metadata(&files(&g));
    assert_eq!(meta["format"], FORMAT);
    assert_eq!(meta["format_version"], 1);
    assert_eq!(meta["kiln_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        meta["features"],
        json!([{"name": "f0", "type": "double"}, {"name": "f1", "type": "double"}])
    );
    assert_eq!(meta["label"], "label");
    assert_eq!(
        meta["model"],
        json!({"num_classes": 3, "multinomial": true})
    );
    assert_eq!(metadata(&files(&k))["label"], Value::Null);
    assert_eq!(metadata(&files(&k))["model"], json!({"num_clusters": 3}));
}

#[test]
fn weights_layouts_are_as_documented() {
    let read = |m: Model| weights::read_ipc(files(&m)[WEIGHTS_FILE].clone()).unwrap();
    let column_names = |b: &RecordBatch| -> Vec<String> {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    let k = read(kmeans().into());
    assert_eq!(column_names(&k), ["f0", "f1"]);
    assert_eq!(k.num_rows(), 3);
    let l = read(linear().into());
    assert_eq!(column_names(&l), ["name", "coefficient"]);
    let row_names = l.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let row_names: Vec<&str> = row_names.iter().map(Option::unwrap).collect();
    assert_eq!(row_names, ["f0", "f1", "f2", "(intercept)"]);
    let coef = l.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(coef.value(3).to_bits(), f64::MIN_POSITIVE.to_bits());
    assert_eq!(
        column_names(&read(logistic(false).into())),
        ["name", "class_1"]
    );
    assert_eq!(
        column_names(&read(logistic(true).into())),
        ["name", "class_0", "class_1", "class_2"]
    );
}

#[test]
fn missing_files_are_named() {
    let model: Model = linear().into();
    let mut f = files(&model);
    f.remove(WEIGHTS_FILE);
    assert!(failure(&f, WEIGHTS_FILE).starts_with("missing"));
    f.remove(METADATA_FILE);
    assert!(failure(&f, METADATA_FILE).starts_with("missing"));
}

#[test]
fn metadata_that_is_not_a_kiln_model() {
    let model: Model = kmeans().into();
    let mut f = files(&model);
    f.insert(METADATA_FILE.into(), b"{\"format\": ".to_vec());
    assert!(failure(&f, METADATA_FILE).starts_with("not JSON"));
    f.insert(METADATA_FILE.into(), b"[1, 2]".to_vec());
    assert!(failure(&f, METADATA_FILE).starts_with("not a JSON object"));

    let f = edit_metadata(&model, |m| m["format"] = json!("onnx"));
    assert_eq!(
        failure(&f, METADATA_FILE),
        "format is \"onnx\", expected \"kiln-model\": not a Kiln model"
    );
    let f = edit_metadata(&model, |m| {
        m.as_object_mut().unwrap().remove("format");
    });
    assert!(failure(&f, METADATA_FILE).starts_with("no \"format\" field"));
}

#[test]
fn newer_format_versions_are_refused() {
    let model: Model = kmeans().into();
    let f = edit_metadata(&model, |m| m["format_version"] = json!(2));
    assert_eq!(
        failure(&f, METADATA_FILE),
        "written by a newer Kiln: format_version 2, this build reads 1"
    );
    for bad in [json!(0), json!("1"), json!(-1), json!(1.5)] {
        let f = edit_metadata(&model, |m| m["format_version"] = bad.clone());
        let reason = failure(&f, METADATA_FILE);
        assert!(
            reason.starts_with("format_version must be an integer from 1 to 1, got"),
            "{reason}"
        );
    }
}

#[test]
fn unknown_algorithms_and_bad_schemas() {
    let model: Model = linear().into();
    let f = edit_metadata(&model, |m| m["algorithm"] = json!("svm"));
    assert_eq!(
        failure(&f, METADATA_FILE),
        "unknown algorithm \"svm\"; this build reads kmeans, linear_regression, \
         logistic_regression"
    );
    let f = edit_metadata(&model, |m| m["features"][1]["type"] = json!("string"));
    assert_eq!(
        failure(&f, METADATA_FILE),
        "feature 1 ('f1') has type \"string\"; this build reads \"double\" features"
    );
    let f = edit_metadata(&model, |m| m["features"][1]["name"] = json!("f0"));
    assert_eq!(failure(&f, METADATA_FILE), "feature 'f0' is listed twice");
    let f = edit_metadata(&model, |m| m["features"] = json!([]));
    assert!(failure(&f, METADATA_FILE).starts_with("features is empty"));
    let f = edit_metadata(&model, |m| m["label"] = Value::Null);
    assert_eq!(
        failure(&f, METADATA_FILE),
        "label is missing: a linear_regression model has one"
    );
    let f = edit_metadata(&model, |m| {
        m.as_object_mut().unwrap().remove("summary");
    });
    assert!(failure(&f, METADATA_FILE).contains("missing field `summary`"));
}

#[test]
fn bad_params_and_sections_are_named() {
    let linear: Model = linear().into();
    let f = edit_metadata(&linear, |m| m["params"]["reg_param"] = json!(-1.0));
    assert_eq!(
        failure(&f, METADATA_FILE),
        "params: invalid parameter `reg_param`: reg_param must be >= 0, got -1"
    );
    let f = edit_metadata(&linear, |m| m["params"]["solver"] = json!("newton"));
    assert!(failure(&f, METADATA_FILE).starts_with("params: unknown variant `newton`"));
    let f = edit_metadata(&linear, |m| m["summary"]["stop_reason"] = json!("tired"));
    assert!(failure(&f, METADATA_FILE).starts_with("summary: unknown variant `tired`"));
    let f = edit_metadata(&linear, |m| {
        m["summary"]["objective_history"][0] = json!("x")
    });
    assert!(failure(&f, METADATA_FILE).starts_with("summary:"));

    let k: Model = kmeans().into();
    let f = edit_metadata(&k, |m| m["params"]["k"] = json!(4));
    assert!(failure(&f, METADATA_FILE).starts_with("params: invalid parameter `init`"));
    let f = edit_metadata(&k, |m| {
        m["params"]["k"] = json!(2);
        m["params"]["init"] = json!("random");
    });
    assert_eq!(
        failure(&f, METADATA_FILE),
        "params.k is 2 but model.num_clusters is 3"
    );
    let f = edit_metadata(&k, |m| m["params"]["init"] = json!("kmeans++"));
    assert!(failure(&f, METADATA_FILE).starts_with("params.init is \"kmeans++\""));

    let g: Model = logistic(false).into();
    let f = edit_metadata(&g, |m| m["model"]["num_classes"] = json!(3));
    assert_eq!(
        failure(&f, METADATA_FILE),
        "model: a binomial model has 2 classes, num_classes is 3"
    );
    let f = edit_metadata(&g, |m| {
        m["params"].as_object_mut().unwrap().remove("threshold");
    });
    assert_eq!(
        failure(&f, METADATA_FILE),
        "params: missing field `threshold`"
    );
}

#[test]
fn weights_that_are_not_arrow() {
    let model: Model = kmeans().into();
    let mut f = files(&model);
    f.insert(WEIGHTS_FILE.into(), b"PAR1 not arrow".to_vec());
    assert!(failure(&f, WEIGHTS_FILE).starts_with("not an Arrow IPC file"));

    let batch = weights::batch(&model).unwrap();
    let schema = batch.schema();
    let mut writer = arrow::ipc::writer::FileWriter::try_new(Vec::new(), &schema).unwrap();
    writer.write(&batch).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    f.insert(WEIGHTS_FILE.into(), writer.into_inner().unwrap());
    assert_eq!(
        failure(&f, WEIGHTS_FILE),
        "holds 2 record batches, expected 1"
    );
}

#[test]
fn weights_of_another_shape_are_refused() {
    let k: Model = kmeans().into();
    let two_rows = float_batch(&[
        ("f0", vec![Some(0.0), Some(1.0)]),
        ("f1", vec![Some(0.0), Some(1.0)]),
    ]);
    assert_eq!(
        failure(&with_weights(&k, &two_rows), WEIGHTS_FILE),
        "has 2 rows but metadata.json declares 3 (model.num_clusters)"
    );
    let renamed = float_batch(&[("f0", vec![Some(0.0); 3]), ("g", vec![Some(0.0); 3])]);
    assert_eq!(
        failure(&with_weights(&k, &renamed), WEIGHTS_FILE),
        "columns are [f0, g] but metadata.json declares [f0, f1]"
    );
    let one_column = float_batch(&[("f0", vec![Some(0.0); 3])]);
    assert!(failure(&with_weights(&k, &one_column), WEIGHTS_FILE).starts_with("columns are [f0]"));

    // A linear model's weights with a missing feature row.
    let l: Model = linear().into();
    let batch = weights::batch(&l).unwrap().slice(1, 3);
    assert_eq!(
        failure(&with_weights(&l, &batch), WEIGHTS_FILE),
        "has 3 rows but metadata.json declares 4 (one row per feature and one for the intercept)"
    );
    // Rows in another order.
    let names = StringArray::from(vec!["f1", "f0", "f2", "(intercept)"]);
    let batch = weights::batch(&l).unwrap();
    let swapped = RecordBatch::try_new(
        batch.schema(),
        vec![Arc::new(names), batch.column(1).clone()],
    )
    .unwrap();
    assert_eq!(
        failure(&with_weights(&l, &swapped), WEIGHTS_FILE),
        "row 0 of column 'name' is 'f1', expected 'f0' (the features of metadata.json, then \
         '(intercept)')"
    );
    // A binomial file read as multinomial.
    let g: Model = logistic(true).into();
    let binomial = weights::batch(&logistic(false).into()).unwrap();
    assert_eq!(
        failure(&with_weights(&g, &binomial), WEIGHTS_FILE),
        "columns are [name, class_1] but metadata.json declares [name, class_0, class_1, \
         class_2]"
    );
}

#[test]
fn nan_null_and_mistyped_weights_are_refused() {
    let k: Model = kmeans().into();
    let nan = float_batch(&[
        ("f0", vec![Some(0.0); 3]),
        ("f1", vec![Some(0.0), Some(0.0), Some(f64::NAN)]),
    ]);
    assert_eq!(
        failure(&with_weights(&k, &nan), WEIGHTS_FILE),
        "column 'f1' row 2 is NaN; weights must be finite"
    );
    let inf = float_batch(&[
        ("f0", vec![Some(f64::NEG_INFINITY), Some(0.0), Some(0.0)]),
        ("f1", vec![Some(0.0); 3]),
    ]);
    assert_eq!(
        failure(&with_weights(&k, &inf), WEIGHTS_FILE),
        "column 'f0' row 0 is -inf; weights must be finite"
    );
    let null = float_batch(&[
        ("f0", vec![Some(0.0), None, Some(0.0)]),
        ("f1", vec![Some(0.0); 3]),
    ]);
    assert_eq!(
        failure(&with_weights(&k, &null), WEIGHTS_FILE),
        "column 'f0' has a null at row 1"
    );
    let ints = RecordBatch::try_from_iter([
        ("f0", Arc::new(Int32Array::from(vec![0, 1, 2])) as ArrayRef),
        ("f1", Arc::new(Int32Array::from(vec![0, 1, 2])) as ArrayRef),
    ])
    .unwrap();
    assert_eq!(
        failure(&with_weights(&k, &ints), WEIGHTS_FILE),
        "column 'f0' has type Int32, expected Float64"
    );
}

fn f64_column(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

#[test]
fn predict_arrays_matches_predict() {
    let x0 = [0.0, 9.0, -3.5, 1.0 / 3.0, 11.0];
    let x1 = [0.2, -2.0, 7.0, 0.0, 1e3];
    let x2 = [1.0, 2.0, 3.0, 4.0, 5.0];
    let features = |d: usize| {
        let flat: Vec<f64> = [x0, x1, x2][..d].iter().flatten().copied().collect();
        Features::F64(DenseMatrix::from_column_major(5, d, flat).unwrap())
    };
    let columns = [f64_column(&x0), f64_column(&x1), f64_column(&x2)];

    let k = kmeans();
    let got = Model::from(k.clone())
        .predict_arrays(&columns[..2])
        .unwrap();
    let got = got.as_any().downcast_ref::<UInt32Array>().unwrap();
    assert_eq!(got.null_count(), 0);
    assert_eq!(got.values().to_vec(), k.predict(&features(2)).unwrap());

    let l = linear();
    let got = Model::from(l.clone()).predict_arrays(&columns).unwrap();
    let got = got.as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(bits(got.values()), bits(&l.predict(&features(3)).unwrap()));

    for g in [logistic(false), logistic(true)] {
        let model = Model::from(g.clone());
        let got = model.predict_arrays(&columns[..2]).unwrap();
        let got = got.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(bits(got.values()), bits(&g.predict(&features(2)).unwrap()));

        let proba = model.predict_proba_arrays(&columns[..2]).unwrap();
        assert_eq!(Some(proba.data_type().clone()), model.probability_type());
        let proba = proba.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
        let want = g.predict_proba(&features(2)).unwrap();
        let values = proba
            .values()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for i in 0..5 {
            for c in 0..g.num_classes() {
                assert_eq!(
                    values.value(i * g.num_classes() + c).to_bits(),
                    want.get(i, c).to_bits()
                );
            }
        }
    }
}

#[test]
fn output_types() {
    assert_eq!(Model::from(kmeans()).output_type(), DataType::UInt32);
    assert_eq!(Model::from(linear()).output_type(), DataType::Float64);
    assert_eq!(Model::from(logistic(true)).output_type(), DataType::Float64);
    assert_eq!(Model::from(linear()).probability_type(), None);
    let Some(DataType::FixedSizeList(field, 3)) = Model::from(logistic(true)).probability_type()
    else {
        panic!("not a list of 3")
    };
    assert_eq!(field.data_type(), &DataType::Float64);
    for model in all_models() {
        let columns: Vec<ArrayRef> = (0..model.num_features())
            .map(|_| f64_column(&[1.0, 2.0]))
            .collect();
        let out = model.predict_arrays(&columns).unwrap();
        assert_eq!(out.data_type(), &model.output_type());
        assert_eq!(out.len(), 2);
        let empty: Vec<ArrayRef> = (0..model.num_features()).map(|_| f64_column(&[])).collect();
        assert_eq!(model.predict_arrays(&empty).unwrap().len(), 0);
    }
}

#[test]
fn predict_arrays_casts_and_nulls() {
    let model = Model::from(linear());
    let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)]));
    let floats: ArrayRef = Arc::new(Float32Array::from(vec![
        Some(0.5),
        Some(1.0),
        Some(f32::NAN),
        Some(2.0),
    ]));
    let doubles = f64_column(&[1.0, 2.0, 3.0, 4.0]);
    let got = model
        .predict_arrays(&[ints, floats, doubles.clone()])
        .unwrap();
    let got = got.as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(
        (0..4).map(|i| got.is_null(i)).collect::<Vec<_>>(),
        [false, true, true, false]
    );
    let want = model
        .predict_arrays(&[
            f64_column(&[1.0, 0.0, 0.0, 4.0]),
            f64_column(&[0.5, 0.0, 0.0, 2.0]),
            doubles,
        ])
        .unwrap();
    let want = want.as_any().downcast_ref::<Float64Array>().unwrap();
    for i in [0, 3] {
        assert_eq!(got.value(i).to_bits(), want.value(i).to_bits());
    }

    let g = Model::from(logistic(true));
    let proba = g
        .predict_proba_arrays(&[
            Arc::new(Int32Array::from(vec![Some(1), None])),
            f64_column(&[0.0, 0.0]),
        ])
        .unwrap();
    assert!(proba.is_valid(0) && proba.is_null(1));
}

#[test]
fn predict_arrays_errors_name_the_problem() {
    let model = Model::from(kmeans());
    let err = model.predict_arrays(&[f64_column(&[1.0])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot predict: the kmeans model takes 2 feature columns (f0, f1), got 1"
    );
    let text: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
    let err = model
        .predict_arrays(&[f64_column(&[1.0]), text])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column 'f1': feature column 1 (0-based, of 2) has type Utf8, which is not numeric; \
         cast it or index it with StringIndexer"
    );
    let err = model
        .predict_arrays(&[f64_column(&[1.0]), f64_column(&[1.0, 2.0])])
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("feature column 1 ('f1') has 2 rows but column 0 has 1"));
    let err = Model::from(linear())
        .predict_proba_arrays(&[f64_column(&[1.0])])
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("a linear_regression model gives no class probabilities"));
}
