//! Logistic regression as a step machine.

use super::{LogisticRegression, LogisticRegressionModel};
use crate::linear::trainer::{linear_algorithm, Task};

linear_algorithm!(LogisticRegression => LogisticRegressionModel, "logistic regression", |valid| {
    Task::Classification(valid.family)
});
