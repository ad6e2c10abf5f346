//! Panics of the code the driver runs while planning (schema inference, statistics, a
//! library decoding a corrupt file's footer) caught at the planning boundary and turned into
//! [`EngineError::Panicked`], so that a bad input never takes the driver's process down.
//! Executors catch panics at their own task boundary (`ExecutorRuntime::run_task`).

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use kiln_executor::error::panic_message;

use crate::error::{EngineError, Result};

/// Runs `work`; a panic inside it becomes [`EngineError::Panicked`] naming `during` and the
/// `files` it was reading.
///
/// Unwind safety: what `work` touched is the statement's own planning state, dropped with the
/// error; shared state (the catalog, the session's settings) is only ever changed by
/// completed calls, so no half-updated value is visible afterwards.
pub(crate) async fn guard<T>(
    during: impl FnOnce() -> String,
    files: impl FnOnce() -> Vec<String>,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(EngineError::Panicked {
            during: during(),
            files: files(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// The first line of a statement, shortened, for naming it in an error.
pub(crate) fn statement_text(sql: &str) -> String {
    let text = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The locations of a `CREATE EXTERNAL TABLE`: the files a statement names that planning
/// reads.
pub(crate) fn statement_files(sql: &str) -> Vec<String> {
    use datafusion::sql::parser::{DFParser, Statement};
    let Ok(statements) = DFParser::parse_sql(sql) else {
        return Vec::new();
    };
    statements
        .iter()
        .flat_map(|s| match s {
            Statement::CreateExternalTable(c) => c.locations.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// The locations of the file tables a logical plan scans.
pub(crate) fn plan_files(plan: &datafusion::logical_expr::LogicalPlan) -> Vec<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::listing::ListingTable;
    use datafusion::datasource::source_as_provider;
    use datafusion::logical_expr::LogicalPlan;
    let mut files = Vec::new();
    // Visiting cannot fail: the closure never returns an error.
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                if let Some(table) = provider.downcast_ref::<ListingTable>() {
                    files.extend(table.table_paths().iter().map(|p| p.to_string()));
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    files
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_naming_what_ran() {
        let err = guard(
            || "planning `SELECT 1`".to_string(),
            || vec!["/data/c.parquet".to_string()],
            async {
                if std::hint::black_box(true) {
                    panic!("attempt to subtract with overflow");
                }
                Ok(())
            },
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, EngineError::Panicked { .. }), "{text}");
        assert!(
            text.contains("planning `SELECT 1` panicked while reading '/data/c.parquet'"),
            "{text}"
        );
        assert!(text.contains("attempt to subtract with overflow"), "{text}");
    }

    #[test]
    fn statements_name_their_files() {
        assert_eq!(
            statement_files("CREATE EXTERNAL TABLE c STORED AS PARQUET LOCATION '/d/c.parquet'"),
            vec!["/d/c.parquet".to_string()]
        );
        assert!(statement_files("SELECT 1").is_empty());
        assert_eq!(statement_text("SELECT\n  1"), "SELECT 1");
    }
}
