//! Logistic regression as a step machine.

use super::{LogisticRegression, LogisticRegressionModel};
use crate::error::{MlError, Result};
use crate::linear::trainer::{Advance, Task, Trainer};
use crate::step::{Algorithm, DatasetInfo, Partial, Progress, Step};

impl Algorithm for LogisticRegression {
    type Model = LogisticRegressionModel;

    fn start(&mut self, info: &DatasetInfo) -> Result<Step<Self::Model>> {
        let valid = self.check()?;
        let (trainer, kernel) = Trainer::start(
            "logistic regression",
            valid.common,
            Task::Classification(valid.family),
            info,
        )?;
        self.trainer = Some(trainer);
        Ok(Step::RunKernel(kernel))
    }

    fn next(&mut self, partial: Partial) -> Result<Step<Self::Model>> {
        let trainer = self
            .trainer
            .as_mut()
            .ok_or_else(|| MlError::Internal("logistic regression: next before start".into()))?;
        Ok(match trainer.next(partial)? {
            Advance::Run(kernel) => Step::RunKernel(kernel),
            Advance::Finished(fitted) => {
                // The builder is not changed by training: `check` gives the parameters it
                // started with, recorded in the model.
                Step::Done(LogisticRegressionModel::from_fitted(fitted, self.check()?)?)
            }
        })
    }

    fn progress(&self) -> Progress {
        self.trainer.as_ref().map_or(
            Progress {
                iteration: 0,
                max_iter: self.common.max_iter,
                loss: None,
            },
            Trainer::progress,
        )
    }
}
