//! Logs and traces, set up the same way in every process.
//!
//! - `RUST_LOG` filters (default `info,sqlx=warn`); `LOG_FORMAT=json` writes one JSON object per
//!   line (for a log collector), anything else human-readable text.
//! - With `OTEL_EXPORTER_OTLP_ENDPOINT` set (e.g. `http://collector:4318`), spans are exported over
//!   OTLP/HTTP (JSON) to `<endpoint>/v1/traces`, named by `OTEL_SERVICE_NAME` or the process.
//! - One operation is one trace across processes: W3C `traceparent` travels in NATS headers
//!   ([`inject`] on the sending side, [`extract`] on the receiving one), from the gateway's
//!   GraphQL request to the command service, into the headers of the events it appends, and on to
//!   the projector's commit of them.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The crates whose spans are traced (their `tracing` targets).
const OUR_CRATES: &[&str] =
    &["command_service", "projector", "query_service", "event_store", "service_kit", "ticketing"];

/// The header that carries the trace context (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

/// Keeps the trace exporter running; dropping it flushes the spans not yet sent.
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs logging and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, trace export, for the
/// process `service` (its `service.name` unless `OTEL_SERVICE_NAME` says otherwise).
///
/// # Errors
/// When the OTLP exporter cannot be built from its settings.
pub fn init(service: &str) -> Result<Telemetry, String> {
    init_with(service, "info,sqlx=warn")
}

/// [`init`] with the log filter used when `RUST_LOG` is unset (`ticketing up` keeps its own
/// one-line steps on the terminal, and only errors of its components).
///
/// # Errors
/// When the OTLP exporter cannot be built from its settings.
pub fn init_with(service: &str, default_filter: &str) -> Result<Telemetry, String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.trim().is_empty());
    // Spans get trace ids (and carry them to the other processes) with or without an exporter.
    // Built on a thread of its own: the exporter's blocking HTTP client must not be made (or
    // dropped) on an async runtime's thread.
    let name = service.to_owned();
    let provider = std::thread::spawn(move || provider(&name, endpoint.as_deref()))
        .join()
        .map_err(|_| "the trace exporter could not be built".to_owned())??;
    // Spans are traced whatever RUST_LOG keeps of the logs: the platform's own at info level.
    let ours = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::WARN)
        .with_targets(OUR_CRATES.iter().map(|c| (*c, tracing::Level::INFO)));
    // Without idle/busy timings on every poll of every span: cheaper on the hot paths.
    let traces = tracing_opentelemetry::layer()
        .with_tracked_inactivity(false)
        .with_tracer(provider.tracer(service.to_owned()))
        .with_filter(ours);
    let provider = Some(provider);
    let registry = tracing_subscriber::registry().with(traces);
    // A second call (tests that start several components in one process) keeps the first.
    let _ = if json {
        registry.with(tracing_subscriber::fmt::layer().json().with_current_span(true).with_filter(filter)).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_filter(filter)).try_init()
    };
    Ok(Telemetry { provider })
}

/// [`init`], or, when its settings are bad, one line `<service>: bad configuration: …` and exit
/// code 2 (as every bad setting).
pub fn init_or_exit(service: &str) -> Telemetry {
    init(service).unwrap_or_else(|problem| {
        eprintln!("{service}: bad configuration: {problem}");
        std::process::exit(2);
    })
}

fn provider(service: &str, endpoint: Option<&str>) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| service.to_owned());
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(name).build();
    let mut builder = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = endpoint {
        // The exporter's HTTP client speaks TLS through rustls, with ring as everywhere here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
            .with_endpoint(url)
            .with_headers(HashMap::new())
            .build()
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The current span's trace context as NATS headers to send along.
pub fn inject(headers: &mut async_nats::HeaderMap) {
    struct Into<'a>(&'a mut async_nats::HeaderMap);
    impl Injector for Into<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key, value.as_str());
        }
    }
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut Into(headers));
}

/// The trace context `headers` carry (empty when they carry none).
pub fn extract(headers: Option<&async_nats::HeaderMap>) -> opentelemetry::Context {
    struct From<'a>(&'a async_nats::HeaderMap);
    impl Extractor for From<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(async_nats::HeaderValue::as_str)
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(name, _)| name.as_ref()).collect()
        }
    }
    match headers {
        Some(headers) => TraceContextPropagator::new().extract(&From(headers)),
        None => opentelemetry::Context::new(),
    }
}

/// The `traceparent` that `headers` carry, if any.
pub fn traceparent_of(headers: Option<&async_nats::HeaderMap>) -> Option<String> {
    headers?.get(TRACEPARENT).map(|value| value.as_str().to_owned())
}

/// The trace context of one `traceparent` value.
fn context_of(traceparent: &str) -> opentelemetry::Context {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(TRACEPARENT, traceparent);
    extract(Some(&headers))
}

/// Makes `span` a child of the trace `traceparent` names (nothing when it is not valid).
pub fn continue_trace_from(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::TraceContextExt;
    let context = context_of(traceparent);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Links `span` to the span `traceparent` names (nothing when it is not valid).
pub fn link(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::TraceContextExt;
    let context = context_of(traceparent);
    let linked = context.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// Makes `span` a child of the trace `headers` carry (nothing when they carry none).
pub fn continue_trace(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    let context = extract(headers);
    use opentelemetry::trace::TraceContextExt;
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The current span's trace id (32 hex digits), when it is traced.
pub fn trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let id = span.span_context();
    id.is_valid().then(|| id.trace_id().to_string())
}
