//! The command side: takes commands over NATS request-reply, loads the aggregate from the
//! [`event_store`], lets the [`domain`] decide, and appends the outcome with optimistic
//! concurrency. Also runs hold expiry and payments.
//!
//! Built in issue 3; the event store it relies on lives in the `event-store` crate.
