//! The Yew front end of the ticketing platform, compiled to WebAssembly and served by
//! query-service.
//!
//! - [`graphql`]: operations in `web/graphql/*.graphql`, typed by `graphql-client` from
//!   `../schema.graphql`, so a server change that breaks a page fails the build.
//! - [`api`] sends queries and mutations over HTTP; [`ws`] runs subscriptions over
//!   `graphql-transport-ws` and reconnects on its own.
//! - [`state`] holds the pages' state as reducers (plain `cargo test` tests them); [`app`] routes;
//!   [`pages`] and [`components`] render.
//!
//! Nothing is fetched from another origin and no URL is compiled in: every request goes to the
//! origin that served the page.

pub mod api;
pub mod app;
pub mod components;
pub mod format;
pub mod graphql;
pub mod hooks;
pub mod pages;
pub mod state;
pub mod ws;

/// Mounts the app on the page's `<body>`; the bundle's entry point.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<app::App>::new().render();
}
