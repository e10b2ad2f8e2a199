//! Serves the web app built by `scripts/build-web` from `WEB_DIR`, its pages rendered on the
//! server, and what search engines and link previews read.
//!
//! - `/assets/…` are named by content hash: served (gzip when the browser takes it) with
//!   `Cache-Control: public, max-age=31536000, immutable`.
//! - The public pages (`/`, `/tickets/<id>`, `/events`, `/events/<id>`, sign-in and sign-up, and
//!   any unknown address) arrive rendered: the app's own components run here
//!   ([`web_app::ssr::render`]), with the data of the read models fetched by running the page's own
//!   queries through the schema under the viewer's session, and the browser hydrates them. The
//!   head gets the page's title, description, `og:` tags and canonical link; an unknown address
//!   or id answers 404 with the app's not-found page. A page is rendered for its viewer only:
//!   `Cache-Control: private, no-cache` (`private, no-store` for a signed-in viewer) and
//!   `Vary: Cookie`, and nothing rendered is kept here.
//! - Every other `GET` that no API route takes is the app's `index.html` with an empty `#app`
//!   (the router in the browser renders the page), with the same caching, so a new build is seen
//!   at once, and a Content-Security-Policy that allows only this origin (and the page's inline
//!   stylesheet by its hash).
//! - `/sitemap.xml` lists upcoming events and available tickets; `/robots.txt` points to it and
//!   keeps crawlers off the API and the private pages.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::AppState;

/// What the page may load: its own origin only (WebAssembly needs `wasm-unsafe-eval`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// The markers in `web/index.html` around what each page replaces in the head.
const HEAD_START: &str = "<!--page-head-->";
const HEAD_END: &str = "<!--/page-head-->";
/// The app's (empty) root in `web/index.html`.
const ROOT: &str = "<div id=\"app\"></div>";

/// The most addresses a sitemap may list (the sitemap protocol's limit).
pub const SITEMAP_MAX: i64 = 50_000;

/// How many pages one gateway renders at once; more wait for a turn.
pub const RENDERS_AT_ONCE: usize = 8;

/// How long a page may wait for a turn and take to render before the app's shell is served
/// instead (the browser then renders it): a flood of page requests slows pages down, never the API.
pub const RENDER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

/// How long one sitemap is served before it is read again.
pub const SITEMAP_SECONDS: u64 = 60;

/// What serving the pages keeps between requests.
pub struct Pages {
    renders: tokio::sync::Semaphore,
    /// The last sitemap: when it was read, for which origin, and its XML.
    sitemap: tokio::sync::Mutex<Option<(std::time::Instant, String, Arc<str>)>>,
}

impl Default for Pages {
    fn default() -> Self {
        Self { renders: tokio::sync::Semaphore::new(RENDERS_AT_ONCE), sitemap: tokio::sync::Mutex::new(None) }
    }
}

/// The routes of the web app over `dir`, to be merged as the gateway's fallback.
pub fn routes(dir: PathBuf) -> Router<AppState> {
    let assets = ServeDir::new(dir.join("assets")).precompressed_gzip();
    let index = dir.join("index.html");
    let pages = Router::new()
        .route("/sitemap.xml", axum::routing::get(sitemap))
        .route("/robots.txt", axum::routing::get(robots))
        .fallback(move |state: State<AppState>, method: Method, uri: Uri, headers: HeaderMap| {
            let index = index.clone();
            async move { app_page(state, &method, &uri, &headers, &index).await }
        })
        .layer(tower_http::compression::CompressionLayer::new().gzip(true));
    Router::new()
        .nest_service(
            "/assets",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ))
                .service(assets),
        )
        .merge(pages)
}

async fn app_page(
    State(state): State<AppState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    index: &std::path::Path,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(template) = tokio::fs::read_to_string(index).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The web app is not built here: run scripts/build-web (ticketing up does it for you), or set WEB_DIR.\n\
             The API is at /graphql.\n",
        )
            .into_response();
    };
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let viewer = state.viewer(headers).await;
    let signed_in = viewer.is_some();
    let rendered = if state.config.server_rendering && web_app::ssr::server_rendered(uri.path()) {
        let turn_and_render = async {
            let _turn = state.pages.renders.acquire().await.ok()?;
            render(&state, viewer, path_and_query).await
        };
        match tokio::time::timeout(RENDER_DEADLINE, turn_and_render).await {
            Ok(page) => page,
            Err(_) => {
                tracing::warn!("a page waited or took too long to render; the browser renders it");
                None
            }
        }
    } else {
        None
    };
    let csp = content_security_policy(&template);
    let (status, page) = match rendered {
        Some(page) => {
            let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::OK);
            (status, fill(&template, &page, &origin(&state, headers)))
        }
        None => (StatusCode::OK, template),
    };
    // A signed-in viewer's page carries their email: not even the browser's own cache keeps it
    // (the back button after signing out on a shared computer).
    let cache = if signed_in { "private, no-store" } else { "private, no-cache" };
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, cache),
            (header::VARY, "Cookie"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        page,
    )
        .into_response();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// [`CONTENT_SECURITY_POLICY`], allowing the page's own inline stylesheet (`scripts/build-web`
/// puts it in the page) by its hash, and nothing else inline.
fn content_security_policy(template: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let style = template.split_once("<style>").and_then(|(_, rest)| rest.split_once("</style>")).map(|(css, _)| css);
    match style {
        Some(css) => {
            let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(css.as_bytes()));
            CONTENT_SECURITY_POLICY.replacen("style-src 'self'", &format!("style-src 'self' 'sha256-{hash}'"), 1)
        }
        None => CONTENT_SECURITY_POLICY.to_owned(),
    }
}

/// Renders the page for `viewer`; `None` (the app's shell is served) when the render failed,
/// which is logged.
async fn render(
    state: &AppState,
    viewer: Option<crate::session::Claims>,
    path_and_query: &str,
) -> Option<web_app::ssr::Page> {
    let started = std::time::Instant::now();
    let for_fetch = state.clone();
    // The page's own queries, run as the viewer's requests would be (only queries: a page reads).
    let fetch: web_app::ssr::Fetch = Arc::new(move |body: serde_json::Value| {
        let (state, viewer) = (for_fetch.clone(), viewer.clone());
        async move {
            let request = match serde_json::from_value::<async_graphql::Request>(body) {
                Ok(request) if selects_a_query(&request) => request,
                _ => return serde_json::json!({"errors": [{"message": "a page only runs queries"}]}),
            };
            let response = state.schema.execute(state.for_viewer(request, viewer)).await;
            serde_json::to_value(&response).unwrap_or_default()
        }
        .boxed()
    });
    let url = path_and_query.to_owned();
    let rendered = std::panic::AssertUnwindSafe(web_app::ssr::render(&url, fetch)).catch_unwind().await;
    let outcome = if rendered.is_ok() { "ok" } else { "failed" };
    ::metrics::histogram!("ticketing_page_render_seconds", "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    match rendered {
        Ok(page) => Some(page),
        Err(_) => {
            let path: String = uri_path(&url).chars().take(200).collect();
            tracing::error!(%path, "a page could not be rendered on the server; the browser renders it");
            None
        }
    }
}

/// Whether the operation `request` names (or its only one) is a query.
fn selects_a_query(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else { return false };
    let operation = match (&document.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(_), None) => None,
    };
    operation.is_some_and(|o| o.node.ty == OperationType::Query)
}

fn uri_path(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The template with the page's head (title, description, `og:` tags, canonical link, the
/// answers for hydration) and its rendered body.
fn fill(template: &str, page: &web_app::ssr::Page, origin: &str) -> String {
    use web_app::ssr::{escape, script_json};
    let (title, description) = (escape(&page.title), escape(&page.description));
    let canonical = escape(&format!("{origin}{}", page.canonical_path));
    let head = format!(
        "<title>{title}</title>\
         <meta name=\"description\" content=\"{description}\">\
         <meta property=\"og:title\" content=\"{title}\">\
         <meta property=\"og:description\" content=\"{description}\">\
         <meta property=\"og:type\" content=\"{}\">\
         <meta property=\"og:url\" content=\"{canonical}\">\
         <meta property=\"og:site_name\" content=\"Tickets\">\
         <meta name=\"twitter:card\" content=\"summary\">\
         <link rel=\"canonical\" href=\"{canonical}\">\
         <script type=\"application/json\" id=\"{}\">{}</script>",
        page.og_type,
        web_app::preload::ELEMENT_ID,
        script_json(&page.preloaded),
    );
    let mut out = match (template.find(HEAD_START), template.find(HEAD_END)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{head}{}", &template[..start], &template[end + HEAD_END.len()..])
        }
        _ => template.replacen("</head>", &format!("{head}</head>"), 1),
    };
    let body = format!("<div id=\"{}\">{}</div>", web_app::ROOT_ID, page.body);
    out = out.replacen(ROOT, &body, 1);
    out
}

/// Where people reach the app, for canonical links and the sitemap: `PUBLIC_URL`, else the first
/// of `ALLOWED_ORIGINS`, else the request's own host over HTTP.
fn origin(state: &AppState, headers: &HeaderMap) -> String {
    let configured = state.config.public_url.iter().chain(state.config.allowed_origins.iter());
    if let Some(url) = configured.map(|u| u.trim().trim_end_matches('/')).find(|u| !u.is_empty()) {
        return url.to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| valid_host(h));
    host.map_or_else(String::new, |host| format!("http://{host}"))
}

/// A `Host` fit to be written into a link: a name or address and a port, nothing else.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// `GET /sitemap.xml`: upcoming events (soonest first) and available tickets (newest first), at
/// most [`SITEMAP_MAX`] addresses.
async fn sitemap(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let origin = origin(&state, &headers);
    // Read at most once a minute per gateway (and origin): 50,000 rows are not read per request.
    let mut cached = state.pages.sitemap.lock().await;
    let fresh = cached.as_ref().filter(|(at, for_origin, _)| {
        at.elapsed() < std::time::Duration::from_secs(SITEMAP_SECONDS) && *for_origin == origin
    });
    let xml = match fresh {
        Some((_, _, xml)) => xml.clone(),
        None => match sitemap_xml(&state, &origin).await {
            Some(xml) => {
                let xml: Arc<str> = xml.into();
                *cached = Some((std::time::Instant::now(), origin.clone(), xml.clone()));
                xml
            }
            None => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        },
    };
    drop(cached);
    let headers =
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8"), (header::CACHE_CONTROL, shared_cache(&state))];
    (headers, xml.to_string()).into_response()
}

/// Caching for what is the same for everyone but names this gateway's origin: public when the
/// origin is configured, else only for the asker (it came from their `Host`).
fn shared_cache(state: &AppState) -> &'static str {
    let mut configured = state.config.public_url.iter().chain(state.config.allowed_origins.iter());
    if configured.any(|u| !u.trim().is_empty()) { "public, max-age=300" } else { "private, no-cache" }
}

async fn sitemap_xml(state: &AppState, origin: &str) -> Option<String> {
    let Ok(rows) = crate::db::sitemap(&state.pool, SITEMAP_MAX).await else {
        tracing::error!("the sitemap could not be read");
        return None;
    };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    for (path, updated_at) in rows {
        let lastmod = updated_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        xml.push_str(&format!(
            "  <url><loc>{}</loc><lastmod>{lastmod}</lastmod></url>\n",
            web_app::ssr::escape(&format!("{origin}{path}"))
        ));
    }
    xml.push_str("</urlset>\n");
    Some(xml)
}

/// `GET /robots.txt`: everything public may be crawled but the API and the private pages.
async fn robots(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let origin = origin(&state, &headers);
    let text = format!(
        "User-agent: *\nDisallow: /graphql\nDisallow: /webhooks/\nDisallow: /my/\nDisallow: /orders/\nDisallow: /sell\n\
         Allow: /\n\nSitemap: {origin}/sitemap.xml\n"
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, shared_cache(&state))], text)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> web_app::ssr::Page {
        web_app::ssr::Page {
            status: 200,
            title: "Rock <b>&</b> \"roll\"".into(),
            description: "$10.00 · Available".into(),
            og_type: "product",
            canonical_path: "/tickets/1".into(),
            body: "<p>hi</p>".into(),
            preloaded: r#"{"k":"</script><script>alert(1)</script>"}"#.into(),
        }
    }

    #[test]
    fn a_page_fills_the_template_with_escaped_tags_and_its_body() {
        let template = "<html><head><meta charset=\"utf-8\"><!--page-head--><title>Tickets</title><!--/page-head--><link></head>\
                        <body><div id=\"app\"></div><noscript></noscript></body></html>";
        let out = fill(template, &page(), "https://tickets.example");
        assert!(out.contains("<title>Rock &lt;b&gt;&amp;&lt;/b&gt; &quot;roll&quot;</title>"), "{out}");
        assert!(out.contains("<meta property=\"og:title\" content=\"Rock &lt;b&gt;"), "{out}");
        assert!(out.contains("<link rel=\"canonical\" href=\"https://tickets.example/tickets/1\">"), "{out}");
        assert!(!out.contains("<title>Tickets</title>"), "the default head is replaced: {out}");
        assert!(out.contains("<div id=\"app\"><p>hi</p></div><noscript>"), "{out}");
        assert_eq!(out.matches("</script>").count(), 1, "the answers cannot close their script: {out}");
    }

    #[test]
    fn a_page_runs_queries_only() {
        let file = "query A { me { id } } mutation B { signOut }";
        let named = |name: &str| async_graphql::Request::new(file).operation_name(name);
        assert!(selects_a_query(&named("A")));
        assert!(!selects_a_query(&named("B")), "a mutation in the same file");
        assert!(!selects_a_query(&async_graphql::Request::new(file)), "no name among several");
        assert!(!selects_a_query(&async_graphql::Request::new("mutation { signOut }")));
        assert!(!selects_a_query(&async_graphql::Request::new("subscription { ticketChanged { id } }")));
        assert!(selects_a_query(&async_graphql::Request::new("{ me { id } }")));
        assert!(!selects_a_query(&async_graphql::Request::new("query {")));
    }

    #[test]
    fn only_a_plain_host_is_written_into_links() {
        assert!(valid_host("127.0.0.1:8080") && valid_host("tickets.example") && valid_host("[::1]:80"));
        assert!(!valid_host("evil.example/\"><script>") && !valid_host("a b") && !valid_host(""));
    }
}
