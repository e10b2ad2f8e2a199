//! Request-cost limits beyond depth and complexity: a cap on aliases per document, and only the
//! operation that runs is validated and costed.
//!
//! Complexity counts `first ×` the selection of every page, so one alias can cost no more than a
//! page of results; the alias cap stops a document from asking for the same cheap field a
//! thousand times under different names, before anything is validated or resolved.
//!
//! A client may send a document of several operations and name the one to run (the web app
//! sends each `.graphql` file whole). Validation would cost every operation, with the variables
//! of the one that runs (so `first: $first` of another is "not defined"); the others are dropped
//! right after parsing, as they never run.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Name;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest};
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{ExecutableDocument, FragmentDefinition, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

use crate::gql::ApiError;

/// The most aliased fields one document may have.
pub const MAX_ALIASES: usize = 100;

/// Refuses documents with more than [`MAX_ALIASES`] aliased fields (`BAD_USER_INPUT`).
pub struct AliasLimit;

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension::default())
    }
}

/// One request's limits: it remembers which operation the request names.
#[derive(Default)]
struct AliasLimitExtension {
    operation: std::sync::Mutex<Option<String>>,
}

/// Keeps only the operation named `name` of a document of several (when it has it).
fn only_the_operation(document: &mut ExecutableDocument, name: Option<&str>) {
    let async_graphql::parser::types::DocumentOperations::Multiple(operations) = &mut document.operations else {
        return;
    };
    if let Some(name) = name
        && operations.keys().any(|n| n.as_str() == name)
    {
        operations.retain(|n, _| n.as_str() == name);
        // And the fragments only the others used (validation refuses unused fragments).
        let used = reachable(document);
        document.fragments.retain(|name, _| used.contains(name));
    }
}

type Fragments = std::collections::HashMap<Name, Positioned<FragmentDefinition>>;

/// What a selection costs before validation: its aliased fields and all its fields, with every
/// fragment counted wherever it is spread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Aliased fields.
    pub aliases: usize,
    /// Fields, fragments expanded.
    pub fields: usize,
}

impl Counts {
    fn plus(self, other: Self) -> Self {
        Self { aliases: self.aliases.saturating_add(other.aliases), fields: self.fields.saturating_add(other.fields) }
    }
}

/// Counts a selection set, each fragment's own counts computed once (so a fragment spread a
/// million times costs one walk, and a "fragment bomb" of 10^30 fields is counted, not walked);
/// a cycle counts nothing here and is refused by validation.
fn counts(set: &SelectionSet, fragments: &Fragments, memo: &mut HashMap<Name, Counts>, path: &mut Vec<Name>) -> Counts {
    set.items.iter().fold(Counts::default(), |total, selection| {
        let here = match &selection.node {
            Selection::Field(field) => {
                let own = Counts { aliases: usize::from(field.node.alias.is_some()), fields: 1 };
                own.plus(counts(&field.node.selection_set.node, fragments, memo, path))
            }
            Selection::InlineFragment(fragment) => counts(&fragment.node.selection_set.node, fragments, memo, path),
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                match (memo.get(name), fragments.get(name)) {
                    (Some(known), _) => *known,
                    (None, Some(fragment)) if !path.contains(name) => {
                        path.push(name.clone());
                        let inside = counts(&fragment.node.selection_set.node, fragments, memo, path);
                        path.pop();
                        memo.insert(name.clone(), inside);
                        inside
                    }
                    _ => Counts::default(),
                }
            }
        };
        total.plus(here)
    })
}

/// What a document would run: its operations', fragments expanded.
pub fn count(document: &ExecutableDocument) -> Counts {
    let mut memo = HashMap::new();
    document.operations.iter().fold(Counts::default(), |total, (_, op)| {
        total.plus(counts(&op.node.selection_set.node, &document.fragments, &mut memo, &mut Vec::new()))
    })
}

/// Every aliased field a document would run.
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    count(document).aliases
}

/// The fragments an operation can reach (through spreads, transitively).
fn reachable(document: &ExecutableDocument) -> std::collections::HashSet<Name> {
    fn spreads(set: &SelectionSet, out: &mut Vec<Name>) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => spreads(&field.node.selection_set.node, out),
                Selection::InlineFragment(fragment) => spreads(&fragment.node.selection_set.node, out),
                Selection::FragmentSpread(spread) => out.push(spread.node.fragment_name.node.clone()),
            }
        }
    }
    let mut todo = Vec::new();
    for (_, op) in document.operations.iter() {
        spreads(&op.node.selection_set.node, &mut todo);
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone())
            && let Some(fragment) = document.fragments.get(&name)
        {
            spreads(&fragment.node.selection_set.node, &mut todo);
        }
    }
    seen
}

/// The refusal of a document over a limit (`BAD_USER_INPUT`), as the gateway types every error.
fn too_complex(what: String) -> ServerError {
    let refused = ApiError::BadInput { message: format!("the query is too complex: {what}"), field: None };
    async_graphql::Error::from(refused).into_server_error(async_graphql::Pos::default())
}

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        *self.operation.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let mut document = next.run(ctx, query, variables).await?;
        let operation = self.operation.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        only_the_operation(&mut document, operation.as_deref());
        let Counts { aliases: count, fields } = self::count(&document);
        // Every field costs at least 1: more fields than the complexity limit is over it, and is
        // refused before validation would walk them all.
        if fields > crate::MAX_COMPLEXITY {
            return Err(too_complex(format!("{fields} fields (at most {})", crate::MAX_COMPLEXITY)));
        }
        if count > MAX_ALIASES {
            return Err(too_complex(format!("{count} aliases (at most {MAX_ALIASES})")));
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::count_aliases;

    fn count(query: &str) -> usize {
        count_aliases(&async_graphql::parser::parse_query(query).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn aliases_in_fragments_count_wherever_they_are_spread() {
        assert_eq!(count("{ a: me { id } b: me { i: id } }"), 3);
        let twice = "{ x: tickets { nodes { ...F } } y: tickets { nodes { ...F } } } \
                     fragment F on Ticket { t1: title t2: title ... on Ticket { t3: title } }";
        assert_eq!(count(twice), 2 + 2 * 3);
        // A cycle counts what it has once and ends (validation refuses it afterwards).
        assert_eq!(count("{ ...A } fragment A on Query { a: me { id } ...B } fragment B on Query { ...A }"), 1);
        // Fragments that each spread the next ten times: 10^30 fields, counted in a moment.
        let mut deep = String::from("{ ...F0 } ");
        for n in 0..30 {
            deep.push_str(&format!("fragment F{n} on Query {{ {} }} ", format!("...F{} ", n + 1).repeat(10)));
        }
        deep.push_str("fragment F30 on Query { a: me { id } }");
        assert_eq!(count(&deep), usize::MAX, "saturates instead of overflowing");
        let bomb = deep.replace("a: me", "me");
        let parsed = async_graphql::parser::parse_query(&bomb).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(super::count(&parsed).fields, usize::MAX, "a fragment bomb's fields are counted");
    }
}
