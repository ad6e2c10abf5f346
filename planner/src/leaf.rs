//! Shared pieces of Kiln's leaf operators (operators without inputs).

/// Implements the input-related methods of `ExecutionPlan` for an operator without inputs:
/// `children`, `apply_expressions` and `with_new_children`.
#[macro_export]
macro_rules! leaf_exec_methods {
    () => {
        fn children(
            &self,
        ) -> Vec<&::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>> {
            vec![]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &::std::sync::Arc<dyn ::datafusion::physical_expr::PhysicalExpr>,
            ) -> ::datafusion::error::Result<
                ::datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> ::datafusion::error::Result<::datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(::datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn with_new_children(
            self: ::std::sync::Arc<Self>,
            children: Vec<::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>>,
        ) -> ::datafusion::error::Result<
            ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
        > {
            if children.is_empty() {
                Ok(self)
            } else {
                Err(::datafusion::error::DataFusionError::Internal(format!(
                    "{} has no inputs",
                    ::datafusion::physical_plan::ExecutionPlan::name(self.as_ref())
                )))
            }
        }
    };
}
