//! Linear regression as a step machine.

use super::{LinearRegression, LinearRegressionModel};
use crate::linear::trainer::{linear_algorithm, Task};

linear_algorithm!(LinearRegression => LinearRegressionModel, "linear regression", |_valid| {
    Task::Regression
});
