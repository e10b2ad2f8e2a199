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
pub mod preload;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod state;
pub mod ws;

/// The id of the element the app renders into.
pub const ROOT_ID: &str = "app";

/// Starts the app in the page's `#app`: hydrates what the server rendered there, with the answers
/// it sent, or renders afresh into an empty one; the bundle's entry point.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
    let json = document.get_element_by_id(preload::ELEMENT_ID).and_then(|e| e.text_content()).unwrap_or_default();
    let props = app::AppProps { preloaded: preload::Preloaded::from_page(&json) };
    match document.get_element_by_id(ROOT_ID) {
        Some(root) if root.first_element_child().is_some() => {
            yew::Renderer::<app::App>::with_root_and_props(root, props).hydrate();
        }
        Some(root) => {
            yew::Renderer::<app::App>::with_root_and_props(root, props).render();
        }
        None => {
            yew::Renderer::<app::App>::with_props(props).render();
        }
    }
}
