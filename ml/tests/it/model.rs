//! Trained models through their files (`save_dir` / `load_dir`) and through Arrow prediction:
//! the round trip is bit-exact, corrupt directories fail naming the file, and
//! `predict_arrays` gives what the models' own `predict` gives.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array, Float64Array, Int32Array, UInt32Array};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use kiln_ml::cluster::kmeans::KMeans;
use kiln_ml::data::{DenseMatrix, Features};
use kiln_ml::linear::{Family, LinearRegression, LogisticRegression};
use kiln_ml::model::{Model, ModelKind, METADATA_FILE, WEIGHTS_FILE};
use kiln_ml::{fit_local, MlError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{names, partitions};

const N: usize = 600;
const D: usize = 3;

/// Seeded rows around three well-separated centres, and which centre each came from.
fn data() -> (Vec<Vec<f64>>, Vec<usize>) {
    let centres = [[0.0, 0.0, 0.0], [6.0, -4.0, 1.0], [-5.0, 5.0, 8.0]];
    let mut rng = StdRng::seed_from_u64(11);
    (0..N)
        .map(|i| {
            let c = i % 3;
            let row = centres[c]
                .iter()
                .map(|m| m + rng.random_range(-1.5..1.5))
                .collect();
            (row, c)
        })
        .unzip()
}

/// One model of each kind trained on `data()`, in 2 partitions.
fn trained() -> (Vec<Model>, Vec<Vec<f64>>) {
    let (x, c) = data();
    let names = names(D);
    let y: Vec<f64> = x
        .iter()
        .map(|r| 1.5 + 2.0 * r[0] - r[1] + 0.25 * r[2])
        .collect();
    let binary: Vec<f64> = c.iter().map(|&c| f64::from(u8::from(c == 1))).collect();
    let classes: Vec<f64> = c.iter().map(|&c| c as f64).collect();

    let unlabelled = partitions(&x, None, 2);
    let kmeans = fit_local(KMeans::new(3).build().unwrap(), &unlabelled, &names, None).unwrap();
    let linear = fit_local(
        LinearRegression::new().reg_param(0.01),
        &partitions(&x, Some(&y), 2),
        &names,
        Some("y"),
    )
    .unwrap();
    let binomial = fit_local(
        LogisticRegression::new().reg_param(0.05),
        &partitions(&x, Some(&binary), 2),
        &names,
        Some("is_one"),
    )
    .unwrap();
    let multinomial = fit_local(
        LogisticRegression::new()
            .family(Family::Multinomial)
            .reg_param(0.05)
            .elastic_net_param(0.5),
        &partitions(&x, Some(&classes), 2),
        &names,
        Some("class"),
    )
    .unwrap();
    let models = vec![
        kmeans.into(),
        linear.into(),
        binomial.into(),
        multinomial.into(),
    ];
    (models, x)
}

fn features(rows: &[Vec<f64>]) -> Features {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Features::F64(DenseMatrix::from_row_major(rows.len(), D, &flat).unwrap())
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Every number of a model, as bits: weights, intercepts, histories.
fn model_bits(model: &Model) -> Vec<u64> {
    match model.kind() {
        ModelKind::KMeans(m) => {
            let mut out: Vec<u64> = m.centers().iter().flat_map(|c| bits(c)).collect();
            out.extend(bits(m.cost_history()));
            out.push(m.cost().to_bits());
            out
        }
        ModelKind::LinearRegression(m) => {
            let mut out = bits(m.coefficients());
            out.push(m.intercept().to_bits());
            out.extend(bits(m.objective_history()));
            out
        }
        ModelKind::LogisticRegression(m) => {
            let mut out = bits(m.coefficient_matrix().as_slice());
            out.extend(bits(m.intercepts()));
            out.extend(bits(m.objective_history()));
            out
        }
    }
}

/// The model's own `predict`, as bits (cluster indices widened).
fn own_predictions(model: &Model, x: &Features) -> Vec<u64> {
    match model.kind() {
        ModelKind::KMeans(m) => m.predict(x).unwrap().into_iter().map(u64::from).collect(),
        ModelKind::LinearRegression(m) => bits(&m.predict(x).unwrap()),
        ModelKind::LogisticRegression(m) => bits(&m.predict(x).unwrap()),
    }
}

/// `predict_arrays`' result as bits, `None` for null rows.
fn array_predictions(array: &ArrayRef) -> Vec<Option<u64>> {
    if let Some(a) = array.as_any().downcast_ref::<UInt32Array>() {
        return a.iter().map(|v| v.map(u64::from)).collect();
    }
    let a = array.as_any().downcast_ref::<Float64Array>().unwrap();
    a.iter().map(|v| v.map(f64::to_bits)).collect()
}

fn columns_f64(rows: &[Vec<f64>]) -> Vec<ArrayRef> {
    (0..D)
        .map(|j| Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r[j]))) as ArrayRef)
        .collect()
}

#[test]
fn save_and_load_are_exact_for_every_model() {
    let (models, x) = trained();
    let x = features(&x);
    let root = tempfile::tempdir().unwrap();
    for (i, model) in models.iter().enumerate() {
        let dir = root.path().join(format!("{i}-{}", model.algorithm()));
        model.save_dir(&dir).unwrap();
        assert!(dir.join(METADATA_FILE).is_file() && dir.join(WEIGHTS_FILE).is_file());
        let back = Model::load_dir(&dir).unwrap();
        assert_eq!(&back, model, "{}", model.algorithm());
        assert_eq!(model_bits(&back), model_bits(model));
        assert_eq!(own_predictions(&back, &x), own_predictions(model, &x));
        assert_eq!(back.params_json(), model.params_json());
        assert_eq!(back.summary_json(), model.summary_json());
        // Saving the loaded model writes the same bytes.
        assert_eq!(back.to_files().unwrap(), model.to_files().unwrap());
    }
}

#[test]
fn trained_models_record_their_params_and_names() {
    let (models, _) = trained();
    let algorithms: Vec<&str> = models.iter().map(Model::algorithm).collect();
    assert_eq!(
        algorithms,
        [
            "kmeans",
            "linear_regression",
            "logistic_regression",
            "logistic_regression"
        ]
    );
    for model in &models {
        assert_eq!(model.feature_names(), names(D));
        assert_eq!(model.num_features(), D);
        assert!(model.summary_json()["iterations"].as_u64().unwrap() >= 1);
    }
    assert_eq!(models[0].label(), None);
    assert_eq!(models[0].params_json()["k"], 3);
    assert_eq!(models[0].params_json()["init"], "k-means||");
    assert_eq!(models[1].label(), Some("y"));
    assert_eq!(models[1].params_json()["reg_param"], 0.01);
    assert_eq!(models[3].params_json()["family"], "multinomial");
    assert_eq!(models[3].params_json()["elastic_net_param"], 0.5);
}

fn reason(dir: &Path) -> (String, String) {
    match Model::load_dir(dir).unwrap_err() {
        MlError::ModelFile { path, reason } => (path, reason),
        other => panic!("not a model file error: {other}"),
    }
}

#[test]
fn corrupt_directories_fail_naming_the_file() {
    let (models, _) = trained();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");

    // Missing weights.
    models[1].save_dir(&dir).unwrap();
    std::fs::remove_file(dir.join(WEIGHTS_FILE)).unwrap();
    let (path, why) = reason(&dir);
    assert_eq!(path, dir.join(WEIGHTS_FILE).display().to_string());
    assert!(why.starts_with("missing"), "{why}");

    // A newer format version.
    models[1].save_dir(&dir).unwrap();
    let text = std::fs::read_to_string(dir.join(METADATA_FILE)).unwrap();
    let newer = text.replace("\"format_version\": 1", "\"format_version\": 2");
    assert_ne!(newer, text);
    std::fs::write(dir.join(METADATA_FILE), newer).unwrap();
    let (path, why) = reason(&dir);
    assert_eq!(path, dir.join(METADATA_FILE).display().to_string());
    assert_eq!(
        why,
        "written by a newer Kiln: format_version 2, this build reads 1"
    );

    // Not JSON.
    std::fs::write(dir.join(METADATA_FILE), "algorithm = kmeans").unwrap();
    assert!(reason(&dir).1.starts_with("not JSON"));

    // A NaN centre, written by another Arrow writer.
    models[0].save_dir(&dir).unwrap();
    let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    let batch = FileReader::try_new(std::io::Cursor::new(bytes), None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut x1: Vec<f64> = batch
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec();
    x1[2] = f64::NAN;
    let mut columns = batch.columns().to_vec();
    columns[1] = Arc::new(Float64Array::from(x1));
    let bad = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let mut writer = FileWriter::try_new(Vec::new(), &bad.schema()).unwrap();
    writer.write(&bad).unwrap();
    writer.finish().unwrap();
    std::fs::write(dir.join(WEIGHTS_FILE), writer.into_inner().unwrap()).unwrap();
    let (path, why) = reason(&dir);
    assert_eq!(path, dir.join(WEIGHTS_FILE).display().to_string());
    assert_eq!(why, "column 'x1' row 2 is NaN; weights must be finite");

    // Not a directory.
    let (path, why) = reason(&root.path().join("nothing here"));
    assert!(path.ends_with("nothing here"));
    assert!(why.starts_with("not a directory"));
}

#[test]
fn predict_arrays_equals_predict() {
    let (models, x) = trained();
    let own_x = features(&x);
    for model in &models {
        let got = model.predict_arrays(&columns_f64(&x)).unwrap();
        assert_eq!(got.data_type(), &model.output_type());
        let want: Vec<Option<u64>> = own_predictions(model, &own_x)
            .into_iter()
            .map(Some)
            .collect();
        assert_eq!(array_predictions(&got), want, "{}", model.algorithm());
    }
}

#[test]
fn predict_arrays_takes_int32_and_float32() {
    let (models, x) = trained();
    // Integer features: the model's predict on the same values rounded.
    let rounded: Vec<Vec<f64>> = x
        .iter()
        .map(|r| r.iter().map(|v| v.round()).collect())
        .collect();
    let ints: Vec<ArrayRef> = (0..D)
        .map(|j| {
            Arc::new(Int32Array::from_iter_values(
                rounded.iter().map(|r| r[j] as i32),
            )) as ArrayRef
        })
        .collect();
    // Float32 features: the model's predict on the same values in f32, widened exactly.
    let narrowed: Vec<Vec<f64>> = x
        .iter()
        .map(|r| r.iter().map(|v| f64::from(*v as f32)).collect())
        .collect();
    let floats: Vec<ArrayRef> = (0..D)
        .map(|j| {
            Arc::new(Float32Array::from_iter_values(
                x.iter().map(|r| r[j] as f32),
            )) as ArrayRef
        })
        .collect();
    for model in &models {
        for (columns, same) in [(&ints, &rounded), (&floats, &narrowed)] {
            let got = model.predict_arrays(columns).unwrap();
            let want: Vec<Option<u64>> = own_predictions(model, &features(same))
                .into_iter()
                .map(Some)
                .collect();
            assert_eq!(array_predictions(&got), want, "{}", model.algorithm());
        }
    }
}

#[test]
fn null_features_give_null_predictions() {
    let (models, x) = trained();
    let rows = &x[..50];
    let mut columns = columns_f64(rows);
    // Column 1 null on every 7th row, column 2 NaN on every 11th.
    columns[1] = Arc::new(Float64Array::from_iter(
        rows.iter()
            .enumerate()
            .map(|(i, r)| (i % 7 != 0).then_some(r[1])),
    ));
    columns[2] = Arc::new(Float64Array::from_iter_values(
        rows.iter()
            .enumerate()
            .map(|(i, r)| if i % 11 == 3 { f64::NAN } else { r[2] }),
    ));
    for model in &models {
        let got = array_predictions(&model.predict_arrays(&columns).unwrap());
        let want = own_predictions(model, &features(rows));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if i % 7 == 0 || i % 11 == 3 {
                assert_eq!(*g, None, "row {i} of {}", model.algorithm());
            } else {
                assert_eq!(*g, Some(*w), "row {i} of {}", model.algorithm());
            }
        }
    }
    let proba = models[3].predict_proba_arrays(&columns).unwrap();
    assert_eq!(
        proba.null_count(),
        (0..50).filter(|i| i % 7 == 0 || i % 11 == 3).count()
    );
}

#[test]
fn predict_arrays_rejects_columns_that_do_not_fit() {
    let (models, x) = trained();
    let columns = columns_f64(&x[..5]);
    let err = models[1].predict_arrays(&columns[..2]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot predict: the linear_regression model takes 3 feature columns (x0, x1, x2), got 2"
    );
    let mut with_text = columns.clone();
    with_text[2] = Arc::new(arrow::array::StringArray::from(vec!["a"; 5]));
    let err = models[0].predict_arrays(&with_text).unwrap_err();
    assert!(matches!(&err, MlError::InvalidColumn { column, .. } if column == "x2"));
    assert!(err
        .to_string()
        .contains("feature column 2 (0-based, of 3) has type Utf8"));
}
