//! Answers the server fetched for a page, so its first render (on the server, and the browser's
//! hydration of it) shows the data instead of "Loading…".
//!
//! A page asks for a query's answer while it renders ([`Preloaded::take`]): the same call that,
//! on the server, tells the gateway which queries the page needs. The gateway renders a page
//! once to learn what it asks for, runs those queries under the viewer's session, and renders it
//! again with the answers (see `ssr`); it sends the answers with the page, in a
//! `<script type="application/json" id="preloaded">`, and the browser's first render takes them
//! from there, so both renders agree node for node. In the browser each answer is used once: a
//! page shown again later loads afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use graphql_client::GraphQLQuery;
use serde::{Deserialize, Serialize};

/// The id of the `<script>` element that carries the answers in a server-rendered page.
pub const ELEMENT_ID: &str = "preloaded";

/// One query a page asked for: the request body the gateway runs, and the key its answer goes by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wanted {
    /// [`key`] of the operation and its variables.
    pub key: String,
    /// The GraphQL request (`query`, `operationName`, `variables`).
    pub body: serde_json::Value,
}

#[derive(Debug, Default)]
struct Inner {
    /// `data` of each answered query as JSON text, by [`key`]: the browser decodes it as it
    /// decodes an answer over HTTP (text to `serde_json::Value` to the operation's type), so the
    /// bundle carries no second decoder.
    answers: HashMap<String, String>,
    /// Queries asked for that have no answer (on the server: to be run).
    #[cfg(feature = "ssr")]
    wanted: Vec<Wanted>,
    /// In the browser an answer is used once; the server renders with them as often as asked.
    once: bool,
    /// The server's clock when it rendered the page (milliseconds since the epoch): what the
    /// browser's first render must believe the time is, to draw what the server drew.
    rendered_at: Option<f64>,
}

/// What a server-rendered page carries in its `<script id="preloaded">`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PageData {
    /// The server's clock at the render (milliseconds since the epoch).
    pub now: Option<f64>,
    /// `data` of each query the page asked for, as JSON text, by [`key`].
    pub answers: HashMap<String, String>,
}

/// The answers of one page view, shared by its components through a context.
#[derive(Debug, Clone, Default)]
pub struct Preloaded(Arc<Mutex<Inner>>);

impl PartialEq for Preloaded {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The key an answer goes by: the operation's name and its variables as JSON.
#[must_use]
pub fn key<Q: GraphQLQuery>(variables: &Q::Variables) -> String
where
    Q::Variables: Serialize + Clone,
{
    let body = Q::build_query(variables.clone());
    let variables = serde_json::to_string(&body.variables).unwrap_or_default();
    format!("{}:{variables}", body.operation_name)
}

impl Preloaded {
    /// The answers the server sent with the page (the JSON of a [`PageData`]); each is used once.
    /// Anything unreadable counts as no answers: the page then loads as usual.
    #[must_use]
    pub fn from_page(json: &str) -> Self {
        let page: PageData = serde_json::from_str(json).unwrap_or_default();
        Self(Arc::new(Mutex::new(Inner {
            answers: page.answers,
            once: true,
            rendered_at: page.now,
            ..Inner::default()
        })))
    }

    /// For a server render at `now` (milliseconds since the epoch): `answers` so far (`data` as
    /// JSON text), each usable by every component that asks.
    #[must_use]
    pub fn for_server(answers: HashMap<String, String>, now: f64) -> Self {
        Self(Arc::new(Mutex::new(Inner { answers, once: false, rendered_at: Some(now), ..Inner::default() })))
    }

    /// The server's clock when it rendered this page, if it did.
    pub fn rendered_at(&self) -> Option<f64> {
        self.inner().rendered_at
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer to `Q` with `variables`, when the page came with one; otherwise `None`, and the
    /// query is noted as wanted.
    pub fn take<Q: GraphQLQuery>(&self, variables: &Q::Variables) -> Option<Q::ResponseData>
    where
        Q::Variables: Serialize + Clone,
    {
        let key = key::<Q>(variables);
        let mut inner = self.inner();
        let answer = if inner.once { inner.answers.remove(&key) } else { inner.answers.get(&key).cloned() };
        let data = answer
            .and_then(|data| serde_json::from_str::<serde_json::Value>(&data).ok())
            .and_then(|data| serde_json::from_value(data).ok());
        // Only a server render runs what a page asks for.
        #[cfg(feature = "ssr")]
        if data.is_none() && !inner.wanted.iter().any(|w| w.key == key) {
            let body = serde_json::to_value(Q::build_query(variables.clone())).unwrap_or_default();
            inner.wanted.push(Wanted { key, body });
        }
        data
    }

    /// The queries asked for without an answer, since the last call.
    #[cfg(feature = "ssr")]
    pub fn wanted(&self) -> Vec<Wanted> {
        std::mem::take(&mut self.inner().wanted)
    }
}

/// The page's answers from the app's context (none outside an app).
#[yew::hook]
pub fn use_preloaded() -> Preloaded {
    yew::use_context::<Preloaded>().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::{TicketDetail, ticket_detail};

    #[test]
    fn a_page_answer_is_used_once_in_the_browser_and_by_every_asker_on_the_server() {
        let vars = ticket_detail::Variables { id: "t1".into() };
        let answers = HashMap::from([(key::<TicketDetail>(&vars), r#"{"ticket":null}"#.to_owned())]);
        let json = serde_json::to_string(&PageData { now: Some(5.0), answers: answers.clone() }).unwrap_or_default();
        let page = Preloaded::from_page(&json);
        assert_eq!(page.rendered_at(), Some(5.0));
        assert!(page.take::<TicketDetail>(&vars).is_some_and(|d| d.ticket.is_none()));
        assert!(page.take::<TicketDetail>(&vars).is_none(), "used once in the browser");
        let server = Preloaded::for_server(answers, 1.0);
        assert!(server.take::<TicketDetail>(&vars).is_some());
        assert!(server.take::<TicketDetail>(&vars).is_some(), "a server render answers every asker");
        assert!(Preloaded::from_page("not json").take::<TicketDetail>(&vars).is_none());
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_missing_answer_is_wanted_once_with_its_request() {
        let server = Preloaded::for_server(HashMap::new(), 1.0);
        let other = ticket_detail::Variables { id: "t2".into() };
        assert!(server.take::<TicketDetail>(&other).is_none());
        assert!(server.take::<TicketDetail>(&other).is_none());
        let wanted = server.wanted();
        assert_eq!(wanted.len(), 1, "{wanted:?}");
        assert_eq!(wanted[0].body["variables"]["id"], "t2");
        assert_eq!(wanted[0].body["operationName"], "TicketDetail");
        assert!(server.wanted().is_empty());
    }
}
