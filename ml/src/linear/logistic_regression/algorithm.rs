//! Logistic regression as a step machine.

use super::{LogisticRegression, LogisticRegressionModel};
use crate::error::Result;
use crate::linear::trainer::{next_step, progress, start_step, Task};
use crate::step::{Algorithm, DatasetInfo, Partial, Progress, Step};

const NAME: &str = "logistic regression";

impl Algorithm for LogisticRegression {
    type Model = LogisticRegressionModel;

    fn start(&mut self, info: &DatasetInfo) -> Result<Step<Self::Model>> {
        let valid = self.check()?;
        let task = Task::Classification(valid.family);
        start_step(&mut self.trainer, NAME, valid.common, task, info)
    }

    fn next(&mut self, partial: Partial) -> Result<Step<Self::Model>> {
        // The builder is not changed by training: `check` gives the parameters it started
        // with, recorded in the model.
        next_step(
            self,
            |s| &mut s.trainer,
            NAME,
            partial,
            |s, fitted| LogisticRegressionModel::from_fitted(fitted, s.check()?),
        )
    }

    fn progress(&self) -> Progress {
        progress(self.trainer.as_ref(), self.common.max_iter)
    }
}
