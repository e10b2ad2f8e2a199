//! Configuration: environment variables, each also a flag.

use std::net::SocketAddr;

use clap::Parser;
use domain::Email;

/// query-service settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "query-service", version, about = "The GraphQL gateway of the ticketing platform")]
pub struct Config {
    /// Where to listen for HTTP.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// NATS server URL (commands go there).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// PostgreSQL with the read models.
    #[arg(long, env = "DATABASE_URL", default_value = "")]
    pub database_url: String,
    /// Secret that signs session tokens (HS256), at least 32 bytes.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, default_value = "")]
    pub jwt_secret: String,
    /// Session lifetime in seconds.
    #[arg(long, env = "SESSION_SECONDS", default_value_t = 86_400)]
    pub session_seconds: i64,
    /// Whether the session cookie is `Secure` (set `false` for plain-HTTP development).
    #[arg(long, env = "COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,
    /// Comma-separated origins allowed to call with the cookie (e.g. `https://tickets.example`).
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Whether introspection is on.
    #[arg(long, env = "GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,
    /// Comma-separated emails of administrators (their `roles` include `ADMIN`).
    #[arg(long, env = "ADMIN_EMAILS", default_value = "", value_delimiter = ',')]
    pub admin_emails: Vec<String>,
    /// The event stream's name (for the projection-lag metric).
    #[arg(long, env = "STREAM_NAME", default_value = "TICKETING")]
    pub stream_name: String,
    /// The web app's bundle (built by `scripts/build-web`), served on every path the API does not take.
    #[arg(long, env = "WEB_DIR", default_value = "web/dist")]
    pub web_dir: std::path::PathBuf,
    /// Whether the public pages arrive rendered (`false` serves the app's empty shell, which
    /// the browser renders: the first-paint benchmark's baseline).
    #[arg(long, env = "SERVER_RENDERING", default_value_t = true, action = clap::ArgAction::Set)]
    pub server_rendering: bool,
    /// The address people reach the app at (`https://tickets.example`), for canonical links and
    /// the sitemap; by default the first of `ALLOWED_ORIGINS`, else the request's host.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Comma-separated networks (CIDRs, e.g. `10.0.0.0/8,fd00::/8`) of the proxies in front of
    /// the gateway: only from these peers is `X-Forwarded-For` read for the client's address.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// How many WebSockets one client address (an IPv6 /64) may hold open on this gateway.
    #[arg(long, env = "WS_MAX_PER_CLIENT", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub ws_max_per_client: u64,
    /// Seconds the read models may stay behind the stream without moving before `/readyz` fails
    /// (the projector is down or wedged: answers would be that stale).
    #[arg(long, env = "PROJECTION_STALL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub projection_stall_seconds: u64,
    /// Where to serve `/metrics` instead of on `HTTP_ADDR` (e.g. `0.0.0.0:9090`), so that a public
    /// ingress in front of `HTTP_ADDR` does not expose it; unset: on `HTTP_ADDR`.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Accept the well-known secrets of the dev overlay and examples (`JWT_SECRET`); never in
    /// production.
    #[arg(long, env = "ALLOW_DEV_SECRETS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_dev_secrets: bool,
    /// The first token of every subject (must match command-service).
    #[arg(long, env = "SUBJECT_ROOT", default_value = "ticketing")]
    pub subject_root: String,
}

impl Config {
    /// Checks values that clap cannot.
    ///
    /// # Errors
    /// One line naming the setting at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.jwt_secret.len() < 32 {
            return Err("JWT_SECRET must be set to at least 32 bytes".into());
        }
        event_store::refuse_dev_secrets(
            self.allow_dev_secrets,
            &[("NATS_URL", &self.nats_url), ("DATABASE_URL", &self.database_url), ("JWT_SECRET", &self.jwt_secret)],
        )?;
        if self.database_url.is_empty() {
            return Err("DATABASE_URL is required".into());
        }
        if self.session_seconds <= 0 {
            return Err("SESSION_SECONDS must be positive".into());
        }
        self.trusted().map_err(|e| format!("TRUSTED_PROXIES: {e}"))?;
        for email in &self.admin_emails {
            if !email.trim().is_empty() && Email::parse(email).is_err() {
                return Err(format!("ADMIN_EMAILS has an invalid address: {email:?}"));
            }
        }
        Ok(())
    }

    /// The trusted proxies' networks.
    ///
    /// # Errors
    /// The first entry that is not a CIDR.
    pub fn trusted(&self) -> Result<Vec<crate::client::Cidr>, String> {
        self.trusted_proxies.iter().filter(|c| !c.trim().is_empty()).map(|c| c.parse()).collect()
    }

    /// Whether an address is an administrator's.
    pub fn is_admin(&self, email: &str) -> bool {
        let Ok(email) = Email::parse(email) else { return false };
        self.admin_emails.iter().filter_map(|e| Email::parse(e).ok()).any(|admin| admin == email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(jwt_secret: &str) -> Config {
        Config {
            jwt_secret: jwt_secret.into(),
            database_url: "postgres://x".into(),
            ..Config::parse_from(["query-service"])
        }
    }

    fn default_of(env: &str) -> String {
        testkit::declared_default::<Config>(env)
    }

    #[test]
    fn defaults_match_the_product_specification() {
        assert_eq!(default_of("HTTP_ADDR"), "127.0.0.1:8080");
        assert_eq!(default_of("SESSION_SECONDS"), "86400", "24 h");
        assert_eq!(default_of("COOKIE_SECURE"), "true");
        assert_eq!(default_of("GRAPHQL_INTROSPECTION"), "true");
    }

    #[test]
    fn the_published_dev_secret_and_bad_proxies_stop_start_up() {
        assert!(config("a-real-secret-a-real-secret-a-real-secret").validate().is_ok());
        let dev = config("dev-only-jwt-secret-change-me-0123456789");
        assert!(dev.validate().is_err_and(|e| e.contains("JWT_SECRET")), "{:?}", dev.validate());
        assert!(Config { allow_dev_secrets: true, ..dev }.validate().is_ok());
        let proxies = Config {
            trusted_proxies: vec!["10.0.0.0/99".into()],
            ..config("a-real-secret-a-real-secret-a-real-secret")
        };
        assert!(proxies.validate().is_err_and(|e| e.starts_with("TRUSTED_PROXIES")), "{:?}", proxies.validate());
    }
}
