//! The GraphQL gateway (axum + async-graphql): queries read PostgreSQL, mutations become
//! commands, subscriptions push changes over WebSocket; it also serves the web app and the
//! payment webhook.
//!
//! Built in issue 5.
