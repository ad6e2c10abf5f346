//! Operators whose `datafusion-proto` form (DataFusion 55) loses part of their meaning, and how
//! Kiln ships them whole.
//!
//! - `IGNORE NULLS` of a window function (`lag`, `lead`, `first_value`, `nth_value`, ...): the
//!   encoder cannot read the flag of a window UDF and writes `false`, so an executor would
//!   respect the nulls;
//! - a window function the optimizer reversed (to read an input sorted the other way: `lag`
//!   becomes a reversed `lead`): the wire form keeps the function but not that it runs
//!   reversed. Kiln writes the unreversed function and reverses it again after decoding;
//! - an aggregate over `GROUPING SETS (())`, one empty grouping set: the wire form keeps the
//!   sets as a flat mask of `sets × columns` flags, which is empty for zero columns, so the one
//!   set comes back as none and the aggregate answers no row instead of one;
//! - a CSV file sink: the wire form writes each unset date and time format as an empty string
//!   and reads it back as a format that prints nothing (every timestamp of the file comes out
//!   empty), and drops the format of zone-aware timestamps and the compression level.
//!
//! [`ship_whole`] wraps each such operator in a [`ShipExec`] just before a plan is encoded. The
//! codec writes the operator itself, over placeholder inputs that carry its inputs'
//! properties, plus what its form loses, and decodes the two back into the operator,
//! complete. Plans without such operators encode exactly as before.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::csv::WriterBuilder;
use datafusion::common::file_options::csv_writer::CsvWriterOptions;
use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::physical_plan::FileSink;
use datafusion::datasource::sink::DataSinkExec;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::window::{
    StandardWindowExpr, StandardWindowFunctionExpr, WindowExpr,
};
use datafusion::physical_plan::aggregates::{AggregateExec, PhysicalGroupBy};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::windows::{
    create_udwf_window_expr, BoundedWindowAggExec, WindowAggExec, WindowUDFExpr,
};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

use crate::shuffle_read::{ReadMode, UnresolvedShuffleExec};

/// Stage id of the placeholder inputs of a shipped operator (never a real stage).
const PLACEHOLDER_STAGE: u32 = u32::MAX;

/// What the wire form of one window expression loses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowFlags {
    /// The window function was called with `IGNORE NULLS`.
    pub ignore_nulls: bool,
    /// The window function runs reversed (the operator holds its unreversed form).
    pub reversed: bool,
}

/// What the wire form of a CSV file sink's writer options loses: the date and time formats
/// (unset ones come back as empty formats) and the compression level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsvFormats {
    /// Format of `Date32`/`Date64` values.
    pub date: Option<String>,
    /// Format of datetimes.
    pub datetime: Option<String>,
    /// Format of timestamps without a time zone.
    pub timestamp: Option<String>,
    /// Format of timestamps with a time zone.
    pub timestamp_tz: Option<String>,
    /// Format of times.
    pub time: Option<String>,
    /// Level of the file compression.
    pub compression_level: Option<u32>,
}

impl CsvFormats {
    /// The formats of `options`.
    pub fn of(options: &CsvWriterOptions) -> Self {
        let w = &options.writer_options;
        let own = |f: Option<&str>| f.map(str::to_string);
        Self {
            date: own(w.date_format()),
            datetime: own(w.datetime_format()),
            timestamp: own(w.timestamp_format()),
            timestamp_tz: own(w.timestamp_tz_format()),
            time: own(w.time_format()),
            compression_level: options.compression_level,
        }
    }

    /// `decoded` (options as the wire form gives them back) with these formats.
    pub fn apply(&self, decoded: &CsvWriterOptions) -> CsvWriterOptions {
        let d = &decoded.writer_options;
        // A builder cannot unset a format: start from one with none.
        let mut w = WriterBuilder::new()
            .with_header(d.header())
            .with_delimiter(d.delimiter())
            .with_quote(d.quote())
            .with_escape(d.escape())
            .with_double_quote(d.double_quote())
            .with_null(d.null().to_string())
            .with_quote_style(d.quote_style())
            .with_line_terminator(d.line_terminator().clone())
            .with_ignore_leading_whitespace(d.ignore_leading_whitespace())
            .with_ignore_trailing_whitespace(d.ignore_trailing_whitespace());
        if let Some(f) = &self.date {
            w = w.with_date_format(f.clone());
        }
        if let Some(f) = &self.datetime {
            w = w.with_datetime_format(f.clone());
        }
        if let Some(f) = &self.timestamp {
            w = w.with_timestamp_format(f.clone());
        }
        if let Some(f) = &self.timestamp_tz {
            w = w.with_timestamp_tz_format(f.clone());
        }
        if let Some(f) = &self.time {
            w = w.with_time_format(f.clone());
        }
        CsvWriterOptions {
            writer_options: w,
            compression: decoded.compression,
            compression_level: self.compression_level,
        }
    }
}

/// An operator to ship whole, with what its `datafusion-proto` form loses.
#[derive(Debug)]
pub struct ShipExec {
    /// The operator as it is encoded (window functions unreversed).
    inner: Arc<dyn ExecutionPlan>,
    /// For a window operator: per window expression, what to give back after decoding.
    window: Vec<WindowFlags>,
    /// For an aggregate: it groups by one empty grouping set.
    empty_grouping_set: bool,
    /// For a CSV file sink: its writer's formats.
    csv: Option<CsvFormats>,
}

impl ShipExec {
    /// The operator, in the form that is encoded.
    pub fn inner(&self) -> &Arc<dyn ExecutionPlan> {
        &self.inner
    }

    /// Per window expression of a window operator, what its wire form loses.
    pub fn window_flags(&self) -> &[WindowFlags] {
        &self.window
    }

    /// Whether the operator is an aggregate over one empty grouping set.
    pub fn empty_grouping_set(&self) -> bool {
        self.empty_grouping_set
    }

    /// For a CSV file sink, the formats of its writer.
    pub fn csv_formats(&self) -> Option<&CsvFormats> {
        self.csv.as_ref()
    }

    /// The operator with its inputs replaced by placeholders that keep their properties, for
    /// encoding the operator alone.
    ///
    /// # Errors
    /// If the operator refuses the placeholders (it cannot: they have its inputs' properties).
    pub fn with_placeholder_inputs(&self) -> DfResult<Arc<dyn ExecutionPlan>> {
        let placeholders = self
            .inner
            .children()
            .into_iter()
            .map(|c| {
                Arc::new(UnresolvedShuffleExec::with_properties(
                    PLACEHOLDER_STAGE,
                    ReadMode::Shuffle,
                    Arc::clone(c.properties()),
                )) as Arc<dyn ExecutionPlan>
            })
            .collect();
        Arc::clone(&self.inner).replace_children(
            placeholders,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
        )
    }
}

/// `plan` with every operator whose proto form loses meaning wrapped in a [`ShipExec`].
///
/// # Errors
/// If DataFusion refuses to rebuild a window operator with its functions unreversed.
pub fn ship_whole(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if let Some(exprs) = window_exprs(&node) {
            let mut flags = Vec::with_capacity(exprs.len());
            let mut encodable = Vec::with_capacity(exprs.len());
            for expr in exprs {
                let (e, f) = encodable_window_expr(expr)?;
                encodable.push(e);
                flags.push(f);
            }
            if flags.iter().any(|f| f.ignore_nulls || f.reversed) {
                let inner = rebuild_window(&node, encodable, Arc::clone(node.children()[0]))?;
                return Ok(Transformed::yes(Arc::new(ShipExec {
                    inner,
                    window: flags,
                    empty_grouping_set: false,
                    csv: None,
                })
                    as Arc<dyn ExecutionPlan>));
            }
        }
        if let Some(agg) = node.downcast_ref::<AggregateExec>() {
            let group_by = agg.group_expr();
            if group_by.has_grouping_set()
                && group_by.expr().is_empty()
                && group_by.groups().len() == 1
            {
                return Ok(Transformed::yes(Arc::new(ShipExec {
                    inner: Arc::clone(&node),
                    window: Vec::new(),
                    empty_grouping_set: true,
                    csv: None,
                })
                    as Arc<dyn ExecutionPlan>));
            }
        }
        if let Some(sink) = csv_sink(&node) {
            return Ok(Transformed::yes(Arc::new(ShipExec {
                csv: Some(CsvFormats::of(sink.writer_options())),
                inner: Arc::clone(&node),
                window: Vec::new(),
                empty_grouping_set: false,
            }) as Arc<dyn ExecutionPlan>));
        }
        Ok(Transformed::no(node))
    })
    .map(|t| t.data)
}

/// The CSV file sink a sink operator writes with.
fn csv_sink(node: &Arc<dyn ExecutionPlan>) -> Option<&CsvSink> {
    let exec = node.downcast_ref::<DataSinkExec>()?;
    let any: &dyn Any = exec.sink();
    any.downcast_ref::<CsvSink>()
}

/// The window operators' expressions.
fn window_exprs(node: &Arc<dyn ExecutionPlan>) -> Option<&[Arc<dyn WindowExpr>]> {
    if let Some(w) = node.downcast_ref::<BoundedWindowAggExec>() {
        Some(w.window_expr())
    } else {
        node.downcast_ref::<WindowAggExec>()
            .map(|w| w.window_expr())
    }
}

/// The window UDF of a window expression, with the flags its wire form loses.
///
/// DataFusion keeps both flags in private fields of `WindowUDFExpr` with no accessor; its
/// derived `Debug` form, which ends with the two fields, is the one way to read them.
///
/// # Errors
/// A `WindowUDFExpr` whose `Debug` form no longer ends with the two fields (a DataFusion
/// version that changed it): shipping it would silently drop the flags.
fn window_udf(expr: &Arc<dyn WindowExpr>) -> DfResult<Option<(&WindowUDFExpr, WindowFlags)>> {
    let Some(standard) = expr.as_any().downcast_ref::<StandardWindowExpr>() else {
        return Ok(None);
    };
    let Some(udf) = standard
        .get_standard_func_expr()
        .as_any()
        .downcast_ref::<WindowUDFExpr>()
    else {
        return Ok(None);
    };
    let debug = format!("{udf:?}");
    let tail = debug
        .rsplit_once("is_reversed: ")
        .map(|(_, t)| t)
        .filter(|t| t.contains("ignore_nulls: "))
        .ok_or_else(|| {
            DataFusionError::Internal(format!(
                "cannot read the flags of window function {} to ship it: {debug}",
                expr.name()
            ))
        })?;
    let flags = WindowFlags {
        reversed: tail.starts_with("true,"),
        ignore_nulls: tail.ends_with("ignore_nulls: true }"),
    };
    Ok(Some((udf, flags)))
}

/// The expression as it is encoded (a reversed function written unreversed), and what the
/// decoder must give back.
fn encodable_window_expr(
    expr: &Arc<dyn WindowExpr>,
) -> DfResult<(Arc<dyn WindowExpr>, WindowFlags)> {
    let Some((udf, mut flags)) = window_udf(expr)? else {
        return Ok((Arc::clone(expr), WindowFlags::default()));
    };
    if flags.reversed {
        // Reversing a reversed function gives the function the query wrote, not reversed;
        // a function reversed into itself stays reversed and cannot be shipped whole.
        let unreversed = udf.reverse_expr().filter(|r| {
            r.as_any()
                .downcast_ref::<WindowUDFExpr>()
                .is_some_and(|u| !format!("{u:?}").contains("is_reversed: true,"))
        });
        match unreversed {
            Some(function) => {
                let rebuilt: Arc<dyn WindowExpr> = Arc::new(StandardWindowExpr::new(
                    function,
                    expr.partition_by(),
                    expr.order_by(),
                    Arc::clone(expr.get_window_frame()),
                ));
                return Ok((rebuilt, flags));
            }
            None => flags.reversed = false,
        }
    }
    Ok((Arc::clone(expr), flags))
}

/// A window operator like `node` with `exprs` over `input`.
fn rebuild_window(
    node: &Arc<dyn ExecutionPlan>,
    exprs: Vec<Arc<dyn WindowExpr>>,
    input: Arc<dyn ExecutionPlan>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(w) = node.downcast_ref::<BoundedWindowAggExec>() {
        let can_repartition = !w.partition_keys().is_empty();
        Ok(Arc::new(BoundedWindowAggExec::try_new(
            exprs,
            input,
            w.input_order_mode.clone(),
            can_repartition,
        )?))
    } else if let Some(w) = node.downcast_ref::<WindowAggExec>() {
        let can_repartition = !w.partition_keys().is_empty();
        Ok(Arc::new(WindowAggExec::try_new(
            exprs,
            input,
            can_repartition,
        )?))
    } else {
        Err(DataFusionError::Internal("not a window operator".into()))
    }
}

/// The operator `decoded` (decoded from its proto form, over its real inputs) given back what
/// that form lost.
///
/// # Errors
/// An operator that is not of the kind the flags describe, or one DataFusion refuses to
/// rebuild.
pub fn restore(
    decoded: Arc<dyn ExecutionPlan>,
    window: &[WindowFlags],
    empty_grouping_set: bool,
    csv: Option<&CsvFormats>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(formats) = csv {
        let exec = decoded.downcast_ref::<DataSinkExec>();
        let sink = csv_sink(&decoded).zip(exec).ok_or_else(|| {
            DataFusionError::Internal("a shipped CSV sink is not a CSV sink".into())
        })?;
        let (sink, exec) = sink;
        let options = formats.apply(sink.writer_options());
        return Ok(Arc::new(DataSinkExec::new(
            Arc::clone(exec.input()),
            Arc::new(CsvSink::new(sink.config().clone(), options)),
            exec.sort_order().clone(),
        )));
    }
    if empty_grouping_set {
        let agg = decoded.downcast_ref::<AggregateExec>().ok_or_else(|| {
            DataFusionError::Internal("a shipped grouping set is not an aggregate".into())
        })?;
        let group_by = PhysicalGroupBy::new(vec![], vec![], vec![vec![]], true);
        let rebuilt = AggregateExec::try_new(
            *agg.mode(),
            group_by,
            agg.aggr_expr().to_vec(),
            agg.filter_expr().to_vec(),
            Arc::clone(agg.input()),
            agg.input_schema(),
        )?
        .with_limit_options(agg.limit_options());
        return Ok(Arc::new(rebuilt));
    }
    let Some(exprs) = window_exprs(&decoded) else {
        return Err(DataFusionError::Internal(
            "a shipped window operator is not a window operator".into(),
        ));
    };
    let input = Arc::clone(decoded.children()[0]);
    let schema = input.schema();
    let exprs = exprs
        .iter()
        .zip(
            window
                .iter()
                .chain(std::iter::repeat(&WindowFlags::default())),
        )
        .map(|(expr, flags)| {
            if !flags.ignore_nulls && !flags.reversed {
                return Ok(Arc::clone(expr));
            }
            let (udf, _) = window_udf(expr)?.ok_or_else(|| {
                DataFusionError::Internal("window flags on a function that is not a UDF".into())
            })?;
            let mut function = create_udwf_window_expr(
                udf.fun(),
                udf.args(),
                &schema,
                expr.name().to_string(),
                flags.ignore_nulls,
            )?;
            if flags.reversed {
                function = function.reverse_expr().ok_or_else(|| {
                    DataFusionError::Internal("a shipped reversed function cannot reverse".into())
                })?;
            }
            Ok(Arc::new(StandardWindowExpr::new(
                function,
                expr.partition_by(),
                expr.order_by(),
                Arc::clone(expr.get_window_frame()),
            )) as Arc<dyn WindowExpr>)
        })
        .collect::<DfResult<Vec<_>>>()?;
    rebuild_window(&decoded, exprs, input)
}

impl DisplayAs for ShipExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ship(")?;
        self.inner.fmt_as(t, f)?;
        write!(f, ")")
    }
}

impl ExecutionPlan for ShipExec {
    fn name(&self) -> &str {
        "ShipExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inner.children()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion> {
        self.inner.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(ShipExec {
            inner: Arc::clone(&self.inner).replace_children(
                children,
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )?,
            window: self.window.clone(),
            empty_grouping_set: self.empty_grouping_set,
            csv: self.csv.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.inner.execute(partition, context)
    }
}
