//! The training loop shared by linear and logistic regression: summarize, validate, then
//! optimize by asking for loss-and-gradient kernels.
//!
//! ```text
//!  start ─▶ Stats(Summary)  ─▶ next: validate labels, scale = 1/σ, centre = μ, pick optimizer
//!        ─▶ Linear(LossGradient at x₀) ─▶ next: f, ∇f = sums / n + L2 ─▶ optimizer.tell ─▶ …
//!        ─▶ Done: coefficients mapped back to the original feature scale
//! ```

use super::kernel::{LinearKernel, LinearPartial, LossGradientSums};
use super::logistic_regression::Family;
use super::loss::Loss;
use super::params::{Common, Solver};
use super::sample::Sample;
use super::summary::TrainingSummary;
use crate::error::{MlError, Result};
use crate::optim::{Ask, Lbfgs, Minimizer, OwlQn, Sgd, Solution};
use crate::stats::{LabelStats, StatsKernel, Summary, MAX_DISTINCT_LABELS};
use crate::step::{DatasetInfo, Kernel, Partial, Progress};

/// What is being learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    Regression,
    Classification(Family),
}

/// A trained linear model on the original feature scale.
#[derive(Debug, Clone)]
pub(crate) struct Fitted {
    pub(crate) features: Vec<String>,
    pub(crate) label: String,
    /// Classes for classification, `1` for regression.
    pub(crate) num_classes: usize,
    /// `rows × d` coefficients row-major, `rows` = 1 except for multinomial models.
    pub(crate) coefficients: Vec<f64>,
    /// One intercept per coefficient row.
    pub(crate) intercepts: Vec<f64>,
    pub(crate) summary: TrainingSummary,
}

/// What the trainer wants next.
pub(crate) enum Advance {
    Run(Kernel),
    Finished(Fitted),
}

#[derive(Debug, Clone)]
enum AnyMinimizer {
    Lbfgs(Lbfgs),
    OwlQn(OwlQn),
    Sgd(Sgd),
}

impl AnyMinimizer {
    fn get_mut(&mut self) -> &mut dyn Minimizer {
        match self {
            AnyMinimizer::Lbfgs(m) => m,
            AnyMinimizer::OwlQn(m) => m,
            AnyMinimizer::Sgd(m) => m,
        }
    }

    fn get(&self) -> &dyn Minimizer {
        match self {
            AnyMinimizer::Lbfgs(m) => m,
            AnyMinimizer::OwlQn(m) => m,
            AnyMinimizer::Sgd(m) => m,
        }
    }
}

/// The optimization problem in the standardized parametrization.
#[derive(Debug, Clone)]
struct Problem {
    loss: Loss,
    num_classes: usize,
    d: usize,
    fit_intercept: bool,
    /// `1/σⱼ`, `0` for constant features.
    scale: Vec<f64>,
    /// `μⱼ` when an intercept is fitted.
    center: Option<Vec<f64>>,
    /// L2 weight per optimizer variable: `½ Σ l2ᵢ xᵢ²` is added to the mean loss.
    l2: Vec<f64>,
    /// Mini-batch fraction below 1 (SGD only).
    fraction: Option<f64>,
    seed: u64,
    /// Whether the penalty is zero (multinomial coefficients are then centred).
    unregularized: bool,
}

impl Problem {
    fn rows(&self) -> usize {
        self.loss.rows()
    }

    fn kernel(&self, x: &[f64], iteration: usize) -> Kernel {
        let n_coef = self.rows() * self.d;
        let intercepts = if self.fit_intercept {
            x[n_coef..].to_vec()
        } else {
            vec![0.0; self.rows()]
        };
        Kernel::Linear(LinearKernel::LossGradient {
            loss: self.loss,
            coefficients: x[..n_coef].to_vec(),
            intercepts,
            scale: Some(self.scale.clone()),
            center: self.center.clone(),
            sample: self.fraction.map(|fraction| Sample {
                fraction,
                seed: self.seed,
                iteration: iteration as u64,
            }),
        })
    }

    /// The smooth objective `mean loss + ½ Σ l2ᵢ xᵢ²` and its gradient from kernel sums.
    fn objective(&self, x: &[f64], sums: &LossGradientSums) -> Result<(f64, Vec<f64>)> {
        let n_coef = self.rows() * self.d;
        if sums.gradient_sum.len() != n_coef + self.rows() {
            return Err(MlError::Internal(format!(
                "a gradient of {} values for {} parameters",
                sums.gradient_sum.len(),
                n_coef + self.rows()
            )));
        }
        let inv_n = if sums.count == 0 {
            0.0
        } else {
            1.0 / sums.count as f64
        };
        let mut value = sums.loss_sum * inv_n;
        let mut gradient: Vec<f64> = sums.gradient_sum[..x.len()]
            .iter()
            .map(|g| g * inv_n)
            .collect();
        for ((g, xi), l2) in gradient.iter_mut().zip(x).zip(&self.l2) {
            value += 0.5 * l2 * xi * xi;
            *g += l2 * xi;
        }
        Ok((value, gradient))
    }

    /// Coefficients and intercepts on the original feature scale.
    fn unscale(&self, solution: &Solution) -> (Vec<f64>, Vec<f64>) {
        let (rows, d) = (self.rows(), self.d);
        let x = &solution.x;
        let mut coefficients: Vec<f64> = x[..rows * d].to_vec();
        for row in coefficients.chunks_mut(d) {
            row.iter_mut().zip(&self.scale).for_each(|(w, s)| *w *= s);
        }
        let mut intercepts = if self.fit_intercept {
            x[rows * d..].to_vec()
        } else {
            vec![0.0; rows]
        };
        if let Some(c) = &self.center {
            for (b, row) in intercepts.iter_mut().zip(coefficients.chunks(d)) {
                *b -= row.iter().zip(c).map(|(w, m)| w * m).sum::<f64>();
            }
        }
        if let Loss::Multinomial { classes } = self.loss {
            // Softmax is unchanged by adding a constant to every class: report the centred
            // intercepts (Spark's choice), and centred coefficients when nothing else pins
            // them down (without a penalty).
            let k = classes as f64;
            if self.fit_intercept {
                let mean = intercepts.iter().sum::<f64>() / k;
                intercepts.iter_mut().for_each(|b| *b -= mean);
            }
            if self.unregularized {
                for j in 0..d {
                    let mean = (0..classes).map(|c| coefficients[c * d + j]).sum::<f64>() / k;
                    (0..classes).for_each(|c| coefficients[c * d + j] -= mean);
                }
            }
        }
        (coefficients, intercepts)
    }
}

#[derive(Debug, Clone)]
struct Optimizing {
    problem: Problem,
    minimizer: AnyMinimizer,
    /// The point last asked for.
    point: Vec<f64>,
}

#[derive(Debug, Clone)]
enum Phase {
    Summarizing,
    Optimizing(Box<Optimizing>),
    /// Done (or failed), with the last progress.
    Finished(Progress),
}

/// The shared step machine behind [`LinearRegression`](super::LinearRegression) and
/// [`LogisticRegression`](super::LogisticRegression).
#[derive(Debug, Clone)]
pub(crate) struct Trainer {
    name: &'static str,
    common: Common,
    task: Task,
    features: Vec<String>,
    label: String,
    phase: Phase,
}

/// Implements [`Algorithm`](crate::step::Algorithm) for a linear estimator named `$name`,
/// with fields `common` and `trainer` and a `check` method giving the validated parameters
/// (bound to `$valid` for `$task`, the [`Task`]), that trains a `$model` built by
/// `$model::from_fitted`.
macro_rules! linear_algorithm {
    ($estimator:ty => $model:ident, $name:literal, |$valid:ident| $task:expr) => {
        impl $crate::step::Algorithm for $estimator {
            type Model = $model;

            fn name(&self) -> &'static str {
                $name
            }

            fn start(
                &mut self,
                info: &$crate::step::DatasetInfo,
            ) -> $crate::Result<$crate::step::Step<Self::Model>> {
                let $valid = self.check()?;
                let task = $task;
                let (trainer, kernel) =
                    $crate::linear::trainer::Trainer::start($name, $valid.common, task, info)?;
                self.trainer = Some(trainer);
                Ok($crate::step::Step::RunKernel(kernel))
            }

            fn next(
                &mut self,
                partial: $crate::step::Partial,
            ) -> $crate::Result<$crate::step::Step<Self::Model>> {
                use $crate::linear::trainer::Advance;
                use $crate::step::Step;
                let trainer = self.trainer.as_mut().ok_or_else(|| {
                    $crate::MlError::Internal(concat!($name, ": next before start").into())
                })?;
                Ok(match trainer.next(partial)? {
                    Advance::Run(kernel) => Step::RunKernel(kernel),
                    Advance::Finished(fitted) => {
                        // The builder is not changed by training: `check` gives the
                        // parameters it started with, recorded in the model.
                        Step::Done($model::from_fitted(fitted, self.check()?)?)
                    }
                })
            }

            fn progress(&self) -> $crate::step::Progress {
                self.trainer.as_ref().map_or(
                    $crate::step::Progress {
                        iteration: 0,
                        max_iter: self.common.max_iter,
                        loss: None,
                    },
                    $crate::linear::trainer::Trainer::progress,
                )
            }
        }
    };
}
pub(crate) use linear_algorithm;

impl Trainer {
    /// Checks the dataset and asks for the column summary.
    pub(crate) fn start(
        name: &'static str,
        common: Common,
        task: Task,
        info: &DatasetInfo,
    ) -> Result<(Self, Kernel)> {
        let label = info.label.clone().ok_or_else(|| {
            MlError::InvalidData(format!("{name} needs a label column and none was given"))
        })?;
        if info.features.is_empty() {
            return Err(MlError::param(
                "features",
                "at least one feature column is needed",
            ));
        }
        if info.rows == 0 {
            return Err(MlError::InvalidData(format!(
                "{name} cannot train on an empty training set (0 rows)"
            )));
        }
        let trainer = Self {
            name,
            common,
            task,
            features: info.features.clone(),
            label,
            phase: Phase::Summarizing,
        };
        Ok((trainer, Kernel::Stats(StatsKernel::Summary { label: true })))
    }

    /// Where training stands.
    pub(crate) fn progress(&self) -> Progress {
        let mut p = Progress {
            iteration: 0,
            max_iter: self.common.max_iter,
            loss: None,
        };
        match &self.phase {
            Phase::Optimizing(o) => {
                let m = o.minimizer.get();
                p.iteration = m.iteration();
                p.loss = m.objective_history().last().copied();
            }
            Phase::Finished(last) => p = *last,
            Phase::Summarizing => {}
        }
        p
    }

    /// Feeds the merged partial of the last kernel.
    pub(crate) fn next(&mut self, partial: Partial) -> Result<Advance> {
        let last = self.progress();
        match std::mem::replace(&mut self.phase, Phase::Finished(last)) {
            Phase::Summarizing => match partial {
                Partial::Stats(s) => self.setup(&s.into_summary()),
                _ => Err(unexpected()),
            },
            Phase::Optimizing(mut o) => match partial {
                Partial::Linear(LinearPartial::LossGradient(sums)) => {
                    let (value, gradient) = o.problem.objective(&o.point, &sums)?;
                    let ask = o.minimizer.get_mut().tell(value, gradient)?;
                    self.handle(o, ask)
                }
                _ => Err(unexpected()),
            },
            Phase::Finished(_) => Err(MlError::Internal(format!(
                "{} was asked to continue after it finished",
                self.name
            ))),
        }
    }

    fn handle(&mut self, mut o: Box<Optimizing>, ask: Ask) -> Result<Advance> {
        match ask {
            Ask::Evaluate(x) => {
                let kernel = o.problem.kernel(&x, o.minimizer.get().iteration());
                o.point = x;
                self.phase = Phase::Optimizing(o);
                Ok(Advance::Run(kernel))
            }
            Ask::Done(solution) => {
                let (coefficients, intercepts) = o.problem.unscale(&solution);
                if coefficients
                    .iter()
                    .chain(&intercepts)
                    .any(|v| !v.is_finite())
                {
                    return Err(MlError::Internal(format!(
                        "{} produced non-finite coefficients",
                        self.name
                    )));
                }
                self.phase = Phase::Finished(Progress {
                    iteration: solution.iterations,
                    max_iter: self.common.max_iter,
                    loss: Some(solution.value),
                });
                Ok(Advance::Finished(Fitted {
                    features: self.features.clone(),
                    label: self.label.clone(),
                    num_classes: o.problem.num_classes,
                    coefficients,
                    intercepts,
                    summary: TrainingSummary {
                        objective_history: solution.objective_history,
                        total_iterations: solution.iterations,
                        stop: solution.stop,
                    },
                }))
            }
        }
    }

    /// From the column summary: validate, standardize, choose the optimizer, ask for `f(x₀)`.
    fn setup(&mut self, summary: &Summary) -> Result<Advance> {
        let n = summary.count();
        if n == 0 {
            return Err(MlError::InvalidData(format!(
                "{} cannot train on an empty training set (0 rows)",
                self.name
            )));
        }
        let d = self.features.len();
        if summary.num_features() != d {
            return Err(MlError::Internal(format!(
                "{} features summarized for {d} feature columns",
                summary.num_features()
            )));
        }
        let label = summary.label().ok_or_else(unexpected)?;
        let (loss, num_classes, class_counts) = match self.task {
            Task::Regression => (Loss::SquaredError, 1, Vec::new()),
            Task::Classification(family) => classes(label, family, &self.label)?,
        };
        let c = &self.common;
        let rows = loss.rows();
        let scale: Vec<f64> = summary
            .std()
            .iter()
            .map(|s| if *s > 0.0 { 1.0 / s } else { 0.0 })
            .collect();
        // Penalty weight per feature in the standardized parametrization β = w σ: with
        // `standardization` the penalty is on β itself, else on w = β / σ.
        let factor: Vec<f64> = scale
            .iter()
            .map(|s| if c.standardization { 1.0 } else { *s })
            .collect();
        let lambda = match c.inverse_strength {
            Some(inverse) => 1.0 / (n as f64 * inverse),
            None => c.reg_param,
        };
        let alpha = c.elastic_net_param;
        let n_var = rows * d + if c.fit_intercept { rows } else { 0 };
        let mut l1 = vec![0.0; n_var];
        let mut l2 = vec![0.0; n_var];
        for k in 0..rows {
            for j in 0..d {
                // A constant feature (scale 0) has no effect; leaving it unpenalized keeps
                // 0 · ∞ out of the weights.
                if scale[j] > 0.0 {
                    l1[k * d + j] = lambda * alpha * factor[j];
                    l2[k * d + j] = lambda * (1.0 - alpha) * factor[j] * factor[j];
                }
            }
        }
        let mut x0 = vec![0.0; n_var];
        if c.fit_intercept {
            let intercepts = &mut x0[rows * d..];
            match loss {
                Loss::SquaredError => intercepts[0] = label.mean(),
                Loss::Logistic => {
                    intercepts[0] = (class_counts[1] as f64 / class_counts[0] as f64).ln();
                }
                Loss::Multinomial { .. } => {
                    // Spark's start: log(1 + count), centred.
                    let raw: Vec<f64> = class_counts.iter().map(|n| (*n as f64).ln_1p()).collect();
                    let mean = raw.iter().sum::<f64>() / raw.len() as f64;
                    intercepts
                        .iter_mut()
                        .zip(&raw)
                        .for_each(|(b, r)| *b = r - mean);
                }
            }
        }
        let has_l1 = l1.iter().any(|v| *v > 0.0);
        let (minimizer, fraction) = match c.solver {
            Solver::Lbfgs if has_l1 => (
                AnyMinimizer::OwlQn(OwlQn::new(l1).max_iter(c.max_iter).tol(c.tol)),
                None,
            ),
            Solver::Lbfgs => (
                AnyMinimizer::Lbfgs(Lbfgs::new().max_iter(c.max_iter).tol(c.tol)),
                None,
            ),
            Solver::Sgd {
                mini_batch_fraction,
                step_size,
                schedule,
            } => {
                let mut sgd = Sgd::new(step_size, schedule)
                    .max_iter(c.max_iter)
                    .tol(c.tol);
                if has_l1 {
                    sgd = sgd.l1(l1);
                }
                (
                    AnyMinimizer::Sgd(sgd),
                    (mini_batch_fraction < 1.0).then_some(mini_batch_fraction),
                )
            }
        };
        let problem = Problem {
            loss,
            num_classes,
            d,
            fit_intercept: c.fit_intercept,
            scale,
            center: c.fit_intercept.then(|| summary.mean().to_vec()),
            l2,
            fraction,
            seed: c.seed,
            unregularized: lambda == 0.0,
        };
        let mut o = Box::new(Optimizing {
            problem,
            minimizer,
            point: Vec::new(),
        });
        let ask = o.minimizer.get_mut().start(x0)?;
        self.handle(o, ask)
    }
}

fn unexpected() -> MlError {
    MlError::Internal("a linear model was given the partial of another kernel".into())
}

/// The loss, number of classes and class counts for a classification label, or an error
/// naming the offending value.
fn classes(label: &LabelStats, family: Family, column: &str) -> Result<(Loss, usize, Vec<u64>)> {
    let needs = "logistic regression needs class indices 0, 1, ..., K-1 \
                 (index string labels with StringIndexer)";
    if let Some(at) = label.first_invalid_class_index() {
        return Err(MlError::InvalidColumn {
            column: column.to_string(),
            reason: format!(
                "label holds {} at row {} of partition {}; {needs}",
                at.value, at.row, at.partition
            ),
        });
    }
    let Some(values) = label.distinct_values() else {
        return Err(MlError::InvalidColumn {
            column: column.to_string(),
            reason: format!("label holds more than {MAX_DISTINCT_LABELS} distinct values; {needs}"),
        });
    };
    let max = label.max();
    if max >= MAX_DISTINCT_LABELS as f64 {
        return Err(MlError::InvalidColumn {
            column: column.to_string(),
            reason: format!(
                "label holds class index {max}; at most {MAX_DISTINCT_LABELS} classes are supported"
            ),
        });
    }
    if values.len() < 2 {
        return Err(MlError::InvalidColumn {
            column: column.to_string(),
            reason: format!(
                "label holds only the value {max}; logistic regression needs at least two classes"
            ),
        });
    }
    // `max` is a validated integer below MAX_DISTINCT_LABELS.
    let k = max as usize + 1;
    let mut counts = vec![0u64; k];
    for (v, n) in values {
        counts[*v as usize] = *n;
    }
    let loss = match family {
        Family::Auto if k <= 2 => Loss::Logistic,
        Family::Binomial if k <= 2 => Loss::Logistic,
        Family::Binomial => {
            return Err(MlError::param(
                "family",
                format!(
                    "binomial needs labels 0 and 1, but label column '{column}' holds class \
                     indices up to {max}; use Family::Multinomial or Family::Auto"
                ),
            ))
        }
        Family::Auto | Family::Multinomial => Loss::Multinomial { classes: k },
    };
    Ok((loss, k, counts))
}
