//! The algorithm registry: every training algorithm's name, task and parameter table, read by
//! every front door.
//!
//! An algorithm registers once, in its own folder, as an [`AlgorithmSpec`]: its name and
//! aliases, whether it needs a label, and a [`ParamSpec`] per parameter (type, default, what
//! it does). SQL's `TRAIN MODEL ... USING name (...)` and `SHOW ALGORITHMS`, Python's
//! estimators and `kiln.algorithms()` all go through [`find`] and [`AlgorithmSpec::estimator`]:
//! a parameter's name, type and allowed values are checked here, once, and its range by the
//! algorithm's own `check` before any data moves.
//!
//! ```
//! use kiln_ml::registry::{self, ParamValue};
//!
//! let spec = registry::find("kmeans").unwrap();
//! let estimator = spec
//!     .estimator([("k".to_string(), ParamValue::Integer(3))])
//!     .unwrap();
//! assert_eq!(estimator.algorithm(), "kmeans");
//! assert!(spec.estimator([("kk".to_string(), ParamValue::Integer(3))]).is_err());
//! ```

use crate::cluster::kmeans::{self, KMeans};
use crate::error::Result;
use crate::linear::{linear_regression, logistic_regression, LinearRegression, LogisticRegression};
pub use crate::params::{ParamMap, ParamSpec, ParamType, ParamValue};

/// Every registered algorithm, in the order `SHOW ALGORITHMS` lists them. Adding an algorithm
/// adds one line here.
pub static ALGORITHMS: &[&AlgorithmSpec] = &[&KMEANS, &LINEAR_REGRESSION, &LOGISTIC_REGRESSION];

/// k-means' registration.
pub static KMEANS: AlgorithmSpec = AlgorithmSpec {
    name: "kmeans",
    aliases: &["k_means"],
    task: Task::Clustering,
    doc: "k-means clustering (Lloyd iterations with distance bounds), k-means|| or random initialisation.",
    params: kmeans::PARAMS,
    build: |p| KMeans::from_params(p).map(Estimator::KMeans),
};

/// Linear regression's registration.
pub static LINEAR_REGRESSION: AlgorithmSpec = AlgorithmSpec {
    name: "linear_regression",
    aliases: &["linear_reg"],
    task: Task::Regression,
    doc:
        "Least squares with an elastic net penalty (ridge, lasso), fitted by L-BFGS/OWL-QN or SGD.",
    params: linear_regression::PARAMS,
    build: |p| LinearRegression::from_params(p).map(Estimator::LinearRegression),
};

/// Logistic regression's registration.
pub static LOGISTIC_REGRESSION: AlgorithmSpec = AlgorithmSpec {
    name: "logistic_regression",
    aliases: &["logistic_reg"],
    task: Task::Classification,
    doc: "Binary or multinomial logistic regression with an elastic net penalty, fitted by L-BFGS/OWL-QN or SGD.",
    params: logistic_regression::PARAMS,
    build: |p| LogisticRegression::from_params(p).map(Estimator::LogisticRegression),
};

/// The algorithm called `name` (or one of its aliases), ignoring ASCII case.
pub fn find(name: &str) -> Option<&'static AlgorithmSpec> {
    ALGORITHMS.iter().copied().find(|a| {
        a.name.eq_ignore_ascii_case(name) || a.aliases.iter().any(|x| x.eq_ignore_ascii_case(name))
    })
}

/// The registered names, for error messages (`kmeans, linear_regression, ...`).
pub fn names() -> String {
    ALGORITHMS
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an algorithm learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Groups rows without a label.
    Clustering,
    /// Predicts a class from a label of classes.
    Classification,
    /// Predicts a number.
    Regression,
}

impl Task {
    /// `clustering`, `classification` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Clustering => "clustering",
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }

    /// Whether training needs a label column.
    pub fn supervised(self) -> bool {
        !matches!(self, Task::Clustering)
    }
}

/// An algorithm's registration.
#[derive(Debug)]
pub struct AlgorithmSpec {
    /// The name in `TRAIN MODEL ... USING name` and in model files.
    pub name: &'static str,
    /// Other accepted spellings (`k_means`, `logistic_reg`).
    pub aliases: &'static [&'static str],
    /// What it learns.
    pub task: Task,
    /// One sentence on the algorithm.
    pub doc: &'static str,
    /// Its parameters, in the order docs list them.
    pub params: &'static [ParamSpec],
    /// The estimator from checked parameters.
    pub build: fn(&ParamMap) -> Result<Estimator>,
}

impl AlgorithmSpec {
    /// The parameter called `name`, ignoring ASCII case.
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The parameter names, for error messages.
    pub fn param_names(&self) -> String {
        self.params
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The estimator with `values`: each name must be one of [`params`](Self::params) (once)
    /// and each value of its type; ranges are checked by the estimator's `check`, which this
    /// also runs, so the estimator returned is ready to fit.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`](crate::MlError::InvalidParameter) naming the parameter: unknown (with the accepted list),
    /// given twice, of the wrong type, not one of its choices, or out of range.
    pub fn estimator(
        &'static self,
        values: impl IntoIterator<Item = (String, ParamValue)>,
    ) -> Result<Estimator> {
        let map = ParamMap::new(self.name, self.params, values)?;
        let estimator = (self.build)(&map)?;
        estimator.check()?;
        Ok(estimator)
    }
}

/// An estimator of any registered algorithm, its parameters set but not yet fitted.
#[derive(Debug, Clone)]
pub enum Estimator {
    /// k-means clustering.
    KMeans(KMeans),
    /// Least squares, ridge, lasso, elastic net.
    LinearRegression(LinearRegression),
    /// Binary or multinomial logistic regression.
    LogisticRegression(LogisticRegression),
}

impl Estimator {
    /// The registered name of its algorithm.
    pub fn algorithm(&self) -> &'static str {
        self.spec().name
    }

    /// Its algorithm's registration.
    pub fn spec(&self) -> &'static AlgorithmSpec {
        match self {
            Estimator::KMeans(_) => &KMEANS,
            Estimator::LinearRegression(_) => &LINEAR_REGRESSION,
            Estimator::LogisticRegression(_) => &LOGISTIC_REGRESSION,
        }
    }

    /// Whether training needs a label.
    pub fn supervised(&self) -> bool {
        self.spec().task.supervised()
    }

    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`](crate::MlError::InvalidParameter) naming the first parameter out of range.
    pub fn check(&self) -> Result<()> {
        match self {
            Estimator::KMeans(e) => e.check().map(drop),
            Estimator::LinearRegression(e) => e.check().map(drop),
            Estimator::LogisticRegression(e) => e.check().map(drop),
        }
    }
}

impl From<KMeans> for Estimator {
    fn from(e: KMeans) -> Self {
        Estimator::KMeans(e)
    }
}

impl From<LinearRegression> for Estimator {
    fn from(e: LinearRegression) -> Self {
        Estimator::LinearRegression(e)
    }
}

impl From<LogisticRegression> for Estimator {
    fn from(e: LogisticRegression) -> Self {
        Estimator::LogisticRegression(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn p(name: &str, value: ParamValue) -> (String, ParamValue) {
        (name.to_string(), value)
    }

    #[test]
    fn every_algorithm_has_unique_names_and_documented_params() {
        let mut seen = Vec::new();
        for a in ALGORITHMS {
            for name in std::iter::once(&a.name).chain(a.aliases) {
                assert!(!seen.contains(name), "{name} registered twice");
                seen.push(*name);
                assert_eq!(find(name).map(|f| f.name), Some(a.name));
            }
            for param in a.params {
                assert!(
                    !param.doc.is_empty(),
                    "{}.{} has no doc",
                    a.name,
                    param.name
                );
                assert_eq!(a.param(param.name).map(|q| q.name), Some(param.name));
            }
            // Defaults alone make a valid estimator of this very algorithm.
            let e = a.estimator([]).unwrap();
            assert_eq!(e.algorithm(), a.name);
        }
    }

    #[test]
    fn values_are_checked_by_name_type_choice_and_range() {
        let kmeans = find("K_MEANS").unwrap();
        let e = kmeans
            .estimator([
                p("k", ParamValue::Integer(4)),
                p("tol", ParamValue::Integer(0)),
                p("init", ParamValue::Text("RANDOM".into())),
            ])
            .unwrap();
        let Estimator::KMeans(e) = e else {
            panic!("not k-means: {e:?}")
        };
        assert_eq!(
            e,
            KMeans::new(4)
                .tol(0.0)
                .init(crate::cluster::kmeans::KMeansInit::Random)
        );
        let err =
            |values: Vec<(String, ParamValue)>| kmeans.estimator(values).unwrap_err().to_string();
        assert!(err(vec![p("kk", ParamValue::Integer(1))])
            .contains("unknown parameter 'kk' for kmeans; accepted parameters: k, "));
        assert!(err(vec![p("k", ParamValue::Float(2.5))])
            .contains("`k`: k must be a non-negative integer, got 2.5"));
        assert!(err(vec![p("k", ParamValue::Integer(-1))]).contains("`k`"));
        assert!(err(vec![p("init", ParamValue::Text("best".into()))]).contains("got 'best'"));
        assert!(err(vec![
            p("k", ParamValue::Integer(2)),
            p("K", ParamValue::Integer(3))
        ])
        .contains("given twice"));
        // Range: k-means' own check.
        assert!(err(vec![p("max_iter", ParamValue::Integer(0))]).contains("max_iter"));
    }

    #[test]
    fn the_values_a_model_lists_train_the_same_estimator_again() {
        use crate::linear::{Family, Solver};
        let again = |spec: &'static AlgorithmSpec, values: Vec<(&'static str, ParamValue)>| {
            let e = spec
                .estimator(values.iter().map(|(n, v)| (n.to_string(), v.clone())))
                .unwrap();
            let back = match e {
                Estimator::KMeans(e) => e.check().unwrap().values(),
                Estimator::LinearRegression(e) => e.check().unwrap().values(),
                Estimator::LogisticRegression(e) => e.check().unwrap().values(),
            };
            assert_eq!(back, values, "{}", spec.name);
        };
        let km = KMeans::new(5).max_iter(7).tol(0.5).seed(9).init_steps(3);
        again(&KMEANS, km.check().unwrap().values());
        let centers = KMeans::new(2).init(crate::cluster::kmeans::KMeansInit::Centers(vec![
            vec![0.0, 1.0],
            vec![2.0, 3.0],
        ]));
        again(&KMEANS, centers.check().unwrap().values());
        let lin = LinearRegression::new()
            .reg_param(0.5)
            .elastic_net_param(0.25)
            .solver(Solver::sgd())
            .seed(4);
        again(&LINEAR_REGRESSION, lin.check().unwrap().values());
        let log = LogisticRegression::new()
            .inverse_strength(2.0)
            .family(Family::Multinomial)
            .threshold(0.3)
            .fit_intercept(false);
        again(&LOGISTIC_REGRESSION, log.check().unwrap().values());
    }
}
