//! Request-cost limits beyond depth and complexity: a cap on aliases per document.
//!
//! Complexity counts `first ×` the selection of every page, so one alias can cost no more than a
//! page of results; the alias cap stops a document from asking for the same cheap field a
//! thousand times under different names, before anything is validated or resolved.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, ServerError, ServerResult, Variables};

/// The most aliased fields one document may have.
pub const MAX_ALIASES: usize = 100;

/// Refuses documents with more than [`MAX_ALIASES`] aliased fields (`BAD_USER_INPUT`).
pub struct AliasLimit;

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension)
    }
}

struct AliasLimitExtension;

/// Aliased fields in a selection set, fragments' bodies counted where they are defined.
fn aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Every aliased field of a document.
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    let operations: usize = document.operations.iter().map(|(_, op)| aliases(&op.node.selection_set.node)).sum();
    let fragments: usize = document.fragments.values().map(|f| aliases(&f.node.selection_set.node)).sum();
    operations + fragments
}

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let count = count_aliases(&document);
        if count > MAX_ALIASES {
            let mut error =
                ServerError::new(format!("the query is too complex: {count} aliases (at most {MAX_ALIASES})"), None);
            let mut extensions = ErrorExtensionValues::default();
            extensions.set("code", domain::ErrorCode::BadUserInput.as_str());
            error.extensions = Some(extensions);
            return Err(error);
        }
        Ok(document)
    }
}
