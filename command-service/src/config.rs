//! Configuration: environment variables, each also a flag.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use domain::Email;

/// command-service settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "command-service", version, about = "Takes commands over NATS and writes events to JetStream")]
pub struct Config {
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// How long a hold lasts before it expires, in seconds.
    #[arg(long, env = "ORDER_HOLD_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub order_hold_seconds: u64,
    /// How many open orders one buyer may have at once.
    #[arg(long, env = "MAX_ACTIVE_HOLDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_active_holds: u64,
    /// The payment provider.
    #[arg(long, env = "PAYMENT_PROVIDER", value_enum, default_value_t = ProviderKind::Fake)]
    pub payment_provider: ProviderKind,
    /// Secret key for the Stripe API (`PAYMENT_PROVIDER=stripe`).
    #[arg(long, env = "STRIPE_API_KEY", hide_env_values = true)]
    pub stripe_api_key: Option<String>,
    /// Base URL of the Stripe API.
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com")]
    pub stripe_api_base: String,
    /// How long a Stripe request may take before its outcome counts as unknown, in milliseconds.
    #[arg(long, env = "STRIPE_TIMEOUT_MS", default_value_t = 20_000)]
    pub stripe_timeout_ms: u64,
    /// How old a payment still pending must be before it is settled by asking the provider
    /// (reconciliation), in seconds; also how often it asks again while the provider says
    /// "processing".
    #[arg(long, env = "PAYMENT_RECONCILE_AFTER_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub payment_reconcile_after_seconds: u64,
    /// Shared secret that signs payment webhooks (`Stripe-Signature`).
    #[arg(long, env = "PAYMENT_WEBHOOK_SECRET", hide_env_values = true, default_value = "")]
    pub payment_webhook_secret: String,
    /// Fake provider only: where its pretend bank sends the webhook that settles a `tok_async`
    /// payment (signed with `PAYMENT_WEBHOOK_SECRET`); unset: such payments wait for one from outside.
    #[arg(long, env = "FAKE_BANK_WEBHOOK_URL")]
    pub fake_bank_webhook_url: Option<String>,
    /// Fake provider only: how long the pretend bank takes to settle, in milliseconds.
    #[arg(long, env = "FAKE_BANK_SETTLE_MS", default_value_t = 3000)]
    pub fake_bank_settle_ms: u64,
    /// Where to answer health probes (`/healthz`, `/readyz`: connected to NATS), e.g. `0.0.0.0:9090`;
    /// unset: no health endpoint.
    #[arg(long, env = "HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
    /// Comma-separated emails of administrators.
    #[arg(long, env = "ADMIN_EMAILS", default_value = "", value_parser = parse_admin_emails)]
    pub admin_emails: AdminEmails,
    /// JetStream replicas of the streams (1 on one machine, 3 in a cluster).
    #[arg(long, env = "STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub stream_replicas: u64,
    /// The first token of every subject; change it to run several deployments on one NATS.
    #[arg(long, env = "SUBJECT_ROOT", default_value = "ticketing")]
    pub subject_root: String,
    /// The event stream's name (the timer stream adds `_TIMERS`).
    #[arg(long, env = "STREAM_NAME", default_value = "TICKETING")]
    pub stream_name: String,
    /// Sign-in failures per email before `RATE_LIMITED`, within `SIGNIN_THROTTLE_SECONDS`.
    #[arg(long, env = "SIGNIN_MAX_FAILURES", default_value_t = 5)]
    pub signin_max_failures: u64,
    /// Sign-in failures per client address before `RATE_LIMITED`.
    #[arg(long, env = "SIGNIN_MAX_FAILURES_PER_ADDR", default_value_t = 20)]
    pub signin_max_failures_per_addr: u64,
    /// How long failures count, in seconds after the last one.
    #[arg(long, env = "SIGNIN_THROTTLE_SECONDS", default_value_t = 900)]
    pub signin_throttle_seconds: u64,
    /// Sign-ups per client address (an IPv6 /64) and minute before `RATE_LIMITED`; 0: no limit.
    #[arg(long, env = "SIGNUP_PER_MINUTE_PER_CLIENT", default_value_t = 60)]
    pub signup_per_minute_per_client: u64,
    /// `createTicket`s per account and minute before `RATE_LIMITED` (the stream keeps every
    /// listing); 0: no limit (and no counting, e.g. for a benchmark of the write path).
    #[arg(long, env = "CREATE_TICKET_PER_MINUTE", default_value_t = 300)]
    pub create_ticket_per_minute: u64,
    /// Accept the well-known secrets of the dev overlay and examples (`PAYMENT_WEBHOOK_SECRET`);
    /// never in production.
    #[arg(long, env = "ALLOW_DEV_SECRETS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_dev_secrets: bool,
    /// Memory for password hashing (argon2id takes 19 MiB per hash), in MiB: at most this much
    /// hashing runs at once (and never more hashes than cores), the rest waits its turn.
    #[arg(long, env = "PASSWORD_HASH_MEMORY_MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(19..=65_536))]
    pub password_hash_memory_mib: u64,
}

/// Which payment provider charges cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// A built-in fake that understands test tokens.
    Fake,
    /// Stripe's PaymentIntents API.
    Stripe,
}

/// The administrators' addresses, normalized.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminEmails(pub Vec<Email>);

impl AdminEmails {
    /// Whether an address belongs to an administrator.
    pub fn contains(&self, email: &Email) -> bool {
        self.0.contains(email)
    }
}

fn parse_admin_emails(raw: &str) -> Result<AdminEmails, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Email::parse(s).map_err(|e| format!("{s:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .map(AdminEmails)
}

impl Config {
    /// Defaults for everything, as if no variable were set, with the given NATS URL.
    pub fn with_nats_url(url: &str) -> Self {
        Self::parse_from(["command-service", "--nats-url", url])
    }

    /// The hold duration.
    pub fn hold(&self) -> Duration {
        Duration::from_secs(self.order_hold_seconds)
    }

    /// Checks settings that depend on each other.
    ///
    /// # Errors
    /// One line naming the setting at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.payment_provider == ProviderKind::Stripe && self.stripe_api_key.as_deref().unwrap_or("").is_empty() {
            return Err("STRIPE_API_KEY is required when PAYMENT_PROVIDER=stripe".into());
        }
        if !self.stripe_api_base.starts_with("http://") && !self.stripe_api_base.starts_with("https://") {
            return Err(format!("STRIPE_API_BASE must be an http(s) URL, got {:?}", self.stripe_api_base));
        }
        event_store::refuse_dev_secrets(
            self.allow_dev_secrets,
            &[("NATS_URL", &self.nats_url), ("PAYMENT_WEBHOOK_SECRET", &self.payment_webhook_secret)],
        )?;
        if self.fake_bank_webhook_url.as_deref().is_some_and(|u| !u.is_empty())
            && self.payment_webhook_secret.is_empty()
        {
            return Err("FAKE_BANK_WEBHOOK_URL needs PAYMENT_WEBHOOK_SECRET to sign its webhooks".into());
        }
        if self.payment_provider == ProviderKind::Stripe
            && self.payment_reconcile_after_seconds.saturating_mul(1000) <= self.stripe_timeout_ms
        {
            // Reconciliation must not ask about a charge whose own request may still be running.
            return Err(format!(
                "PAYMENT_RECONCILE_AFTER_SECONDS ({}) must be longer than STRIPE_TIMEOUT_MS ({} ms)",
                self.payment_reconcile_after_seconds, self.stripe_timeout_ms
            ));
        }
        let root_ok = !self.subject_root.is_empty()
            && self.subject_root.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !root_ok {
            return Err(format!(
                "SUBJECT_ROOT must be one subject token of letters, digits, - or _, got {:?}",
                self.subject_root
            ));
        }
        Ok(())
    }

    /// How many password hashes may run at once: what `PASSWORD_HASH_MEMORY_MIB` holds, and no
    /// more than the cores (more would only wait for a core while holding its memory).
    pub fn password_hashers(&self) -> usize {
        let by_memory = usize::try_from(self.password_hash_memory_mib / crate::accounts::HASH_MEMORY_MIB).unwrap_or(1);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        by_memory.min(cores).max(1)
    }

    /// The stream settings these values describe.
    pub fn stream_settings(&self) -> event_store::StreamSettings {
        event_store::StreamSettings {
            name: self.stream_name.clone(),
            subject_root: self.subject_root.clone(),
            replicas: usize::try_from(self.stream_replicas).unwrap_or(1),
            ..event_store::StreamSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_of(env: &str) -> String {
        testkit::declared_default::<Config>(env)
    }

    #[test]
    fn declared_defaults_match_the_product_specification() {
        assert_eq!(default_of("ORDER_HOLD_SECONDS"), "900");
        assert_eq!(default_of("MAX_ACTIVE_HOLDS"), "5");
        assert_eq!(default_of("PAYMENT_RECONCILE_AFTER_SECONDS"), "60");
        assert_eq!(default_of("PAYMENT_PROVIDER"), "fake");
        assert_eq!(default_of("STRIPE_API_BASE"), "https://api.stripe.com");
    }

    #[test]
    fn defaults_match_the_product_specification() {
        let config = Config::with_nats_url("nats://x");
        assert_eq!((config.order_hold_seconds, config.max_active_holds), (900, 5));
        assert_eq!(config.payment_provider, ProviderKind::Fake);
        assert_eq!(config.stripe_api_base, "https://api.stripe.com");
        assert!(config.validate().is_ok());
    }

    #[test]
    fn admin_emails_are_normalized_and_bad_ones_refused() {
        let config = Config::parse_from(["c", "--admin-emails", " Boss@Example.com ,ops@example.com"]);
        assert!(config.admin_emails.contains(&Email::parse("boss@example.com").unwrap_or_else(|e| panic!("{e}"))));
        assert!(Config::try_parse_from(["c", "--admin-emails", "not-an-email"]).is_err());
    }

    #[test]
    fn the_published_dev_webhook_secret_stops_start_up_unless_allowed() {
        let dev = Config::parse_from(["c", "--payment-webhook-secret", "whsec_dev_only"]);
        assert!(dev.validate().is_err_and(|e| e.contains("PAYMENT_WEBHOOK_SECRET")));
        let allowed =
            Config::parse_from(["c", "--payment-webhook-secret", "whsec_dev_only", "--allow-dev-secrets", "true"]);
        assert!(allowed.validate().is_ok());
    }

    #[test]
    fn a_zero_hold_or_stripe_without_a_key_is_refused() {
        assert!(Config::try_parse_from(["c", "--order-hold-seconds", "0"]).is_err());
        let stripe = Config::parse_from(["c", "--payment-provider", "stripe"]);
        assert_eq!(stripe.validate().err().as_deref(), Some("STRIPE_API_KEY is required when PAYMENT_PROVIDER=stripe"));
    }
}
