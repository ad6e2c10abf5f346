//! # Kiln
//!
//! A dataflow engine for machine-learning pipelines. A [`Session`] owns a driver and its
//! executors; a [`DataFrame`] is a lazy query that runs, when an action asks for rows, as
//! stages of tasks exchanging data through an object-store shuffle.
//!
//! ```text
//!  Session::sql / read_* ─▶ DataFrame (lazy) ─▶ DataFusion physical plan
//!        ─▶ StageGraph (cut at exchanges) ─▶ tasks on executor slots
//!        ─▶ shuffle objects in the store ─▶ result batches on the driver
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> kiln::Result<()> {
//! use kiln::prelude::*;
//! let kiln = Session::builder().executors(2).build().await?;
//! let df = kiln
//!     .sql("SELECT x % 3 AS k, count(*) AS n FROM (VALUES (1), (2), (3), (4)) t(x) GROUP BY k ORDER BY k")
//!     .await?;
//! let batches = df.collect().await?;
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
//! # Ok(()) }
//! ```

mod catalog;
mod cleanup;
pub mod cli;
mod cluster;
pub mod config;
mod context;
mod dataframe;
mod distributed;
mod error;
mod eventlog;
mod job;
pub mod kubernetes;
mod metrics;
pub mod ml;
mod orphans;
mod panic;
mod persist;
#[cfg(feature = "polars")]
mod polars;
mod prom;
mod read;
mod scheduler;
mod session;
pub mod sql;
mod status;
mod ui;
mod write;

pub use config::{AUTH_TOKEN_ENV, EXECUTOR_BIN_ENV};
pub use dataframe::{DataFrame, GroupedDataFrame};
pub use error::{EngineError, Result};
pub use kiln_planner::task::ShuffleCompression;
pub use metrics::{Activity, Metrics};
pub use orphans::OrphanReport;
pub use read::{CsvMode, CsvOptions};
pub use scheduler::{Event, Stamped, EVENT_LOG_VERSION};
pub use session::{ExecutorInfo, Session, SessionBuilder};

/// Re-exported building blocks: Arrow and DataFusion as Kiln uses them.
pub mod deps {
    pub use arrow;
    pub use datafusion;
    pub use k8s_openapi;
    pub use kiln_executor::ExecError;
    pub use kube;
    #[cfg(feature = "polars")]
    pub use polars_core;
}

/// Everything a typical program needs: the session, DataFrames, and DataFusion's expression
/// functions (`col`, `lit`, aggregates, window functions).
pub mod prelude {
    pub use crate::ml::{
        ClassificationMetric, Columns, Evaluator, Fit, HandleInvalid, Imputer, KMeans, KMeansInit,
        LinearRegression, LogisticRegression, MinMaxScaler, OneHotEncoder, Pipeline, Precision,
        RegressionMetric, StandardScaler, StringIndexer, Train, VectorAssembler,
    };
    pub use crate::{CsvMode, CsvOptions, DataFrame, EngineError, Result, Session};
    pub use datafusion::common::JoinType;
    pub use datafusion::functions_aggregate::expr_fn::*;
    pub use datafusion::functions_window::expr_fn::{
        cume_dist, dense_rank, lag, lead, ntile, percent_rank, rank, row_number,
    };
    pub use datafusion::logical_expr::{Expr, ExprFunctionExt, SortExpr};
    pub use datafusion::prelude::{col, lit, when};
}
