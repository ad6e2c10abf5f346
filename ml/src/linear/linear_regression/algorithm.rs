//! Linear regression as a step machine.

use super::{LinearRegression, LinearRegressionModel};
use crate::error::Result;
use crate::linear::trainer::{next_step, progress, start_step, Task};
use crate::step::{Algorithm, DatasetInfo, Partial, Progress, Step};

const NAME: &str = "linear regression";

impl Algorithm for LinearRegression {
    type Model = LinearRegressionModel;

    fn start(&mut self, info: &DatasetInfo) -> Result<Step<Self::Model>> {
        let valid = self.check()?;
        start_step(
            &mut self.trainer,
            NAME,
            valid.common,
            Task::Regression,
            info,
        )
    }

    fn next(&mut self, partial: Partial) -> Result<Step<Self::Model>> {
        // The builder is not changed by training: `check` gives the parameters it started
        // with, recorded in the model.
        next_step(
            self,
            |s| &mut s.trainer,
            NAME,
            partial,
            |s, fitted| LinearRegressionModel::from_fitted(fitted, s.check()?),
        )
    }

    fn progress(&self) -> Progress {
        progress(self.trainer.as_ref(), self.common.max_iter)
    }
}
